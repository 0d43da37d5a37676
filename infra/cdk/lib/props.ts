/**
 * The `Eddo` construct's properties, and the enums and structs they take.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';

/** The log levels eddo's functions log at (Lambda's advanced logging controls). */
export enum LogLevel {
  TRACE = 'TRACE',
  DEBUG = 'DEBUG',
  INFO = 'INFO',
  WARN = 'WARN',
  ERROR = 'ERROR',
  FATAL = 'FATAL',
}

/**
 * Which sbt-aws contract its control plane speaks: `current` (sbt-aws's EventManager with
 * EventDefinitions: `sbt_aws_`-prefixed detail-types, sources `sbt.control.plane` and
 * `sbt.application.plane`) or `legacy` (the DetailType enum before it: bare detail-types, sources
 * `controlPlaneEventSource` and `applicationPlaneEventSource`).
 */
export enum SbtGeneration {
  /** sbt-aws's EventManager with EventDefinitions. */
  CURRENT = 'current',
  /** The DetailType enum before it. */
  LEGACY = 'legacy',
}

/**
 * eddo's decisions as CDEvents (spec 0.4.1) in structured-mode CloudEvents: `service.deployed`
 * or `service.upgraded` (Deployment Succeeded), `service.rolledback` (Rollback Succeeded),
 * `incident.detected` (Rollback Started) and eddo's `dev.cdeventsx.eddo-deployment.blocked` and
 * `.timedout`, each put on the bus as a `CDEvent` event beside the decision.
 */
export interface CDEventsOptions {
  /**
   * The sink (a CDEvents broker, a Tekton or Keptn event listener), as an API destination whose
   * connection carries its authorization (`events.Authorization.apiKey('Authorization',
   * SecretValue.secretsManager(...))`, say): a rule sends it each CDEvent as the request body,
   * `Content-Type: application/cloudevents+json`, with EventBridge's retries (24 hours) and
   * then the dead-letter queue.
   * @default none: the CDEvents stay on the bus (with `onBus`)
   */
  readonly sink?: events.IApiDestination;
  /**
   * Put the CDEvents on the bus even without a sink, for rules of your own.
   * @default false
   */
  readonly onBus?: boolean;
}

/**
 * eddo's GitHub App: the gate writes a check run `eddo gate` on each candidate's commit, in the
 * repository its service's policy names (`checks.github`). The construct creates the secret
 * (`githubAppSecret`) into which you put the App's `app_id` (or `client_id`) and `private_key`.
 */
export interface GitHubAppOptions {
  /**
   * GitHub's REST API: `https://<host>/api/v3` for GitHub Enterprise Server.
   * @default https://api.github.com
   */
  readonly apiUrl?: string;
}

/**
 * eddo's GitLab token: the gate sets a commit status `eddo/gate` on each candidate's commit, in
 * the project its service's policy names (`checks.gitlab`). The construct creates the secret
 * (`gitlabTokenSecret`) into which you put `{"token": "..."}` (a project or group access token,
 * scope `api`).
 */
export interface GitLabStatusesOptions {
  /**
   * GitLab's REST API: `https://<host>/api/v4` for a self-managed GitLab.
   * @default https://gitlab.com/api/v4
   */
  readonly apiUrl?: string;
}

/** sbt-aws's control plane, speaking to tenant-onboarding on the eddo bus. */
export interface SbtOptions {
  /**
   * The sbt-aws contract the control plane speaks.
   * @default SbtGeneration.CURRENT
   */
  readonly generation?: SbtGeneration;
  /**
   * The source of the control plane's onboarding and offboarding requests.
   * @default the generation's: 'sbt.control.plane' (current), 'controlPlaneEventSource' (legacy)
   */
  readonly controlPlaneEventSource?: string;
  /**
   * The source of eddo's answers (provisionSuccess, provisionFailure, ...).
   * @default the generation's: 'sbt.application.plane' (current), 'applicationPlaneEventSource' (legacy)
   */
  readonly applicationPlaneEventSource?: string;
}

/** Where the functions' code comes from. */
export enum FunctionsFrom {
  /** The arm64 bootstraps the package carries, checked against its manifest. */
  PREBUILT = 'prebuilt',
  /** Built at synth from the workspace (`manifestPath`) by cargo-lambda (cargo-lambda-cdk's RustFunction). */
  SOURCE = 'source',
}

/** Properties of the `Eddo` construct. */
export interface EddoProps {
  /**
   * The policy file (YAML, see infra/policy/example.yaml). Read and checked at synth with eddo's
   * own parser: a mistake fails synth with the message the functions would log. It deploys with
   * the stack: in the SSM parameter `policyParameterName` when it fits one (8 KB), else as a file
   * asset (an object of the bootstrap's versioned asset bucket), which the functions read with a
   * conditional GET and whose version id each decision names.
   */
  readonly policyFile: string;
  /**
   * A workspace's Cargo.toml: with `FunctionsFrom.SOURCE` the functions are built from its
   * binaries (cargo-lambda, arm64, the release profile), and the policy is checked by its `eddo`.
   * @default the workspace this construct ships in (a checkout of eddo)
   */
  readonly manifestPath?: string;
  /**
   * Where the functions' code comes from: the arm64 bootstraps this package carries (built by
   * cargo-lambda from the release the package is; neither Rust nor Docker needed at synth), or
   * the workspace at `manifestPath`, built at synth by cargo-lambda.
   * @default FunctionsFrom.PREBUILT when the package carries them and no `manifestPath` is given, else FunctionsFrom.SOURCE
   */
  readonly functionsFrom?: FunctionsFrom;
  /**
   * The command that runs eddo's CLI (its arguments follow).
   * @default `EDDO_CLI` if set, else `cargo run -p eddo-cli --bin eddo --` in the workspace
   */
  readonly eddoCommand?: string[];
  /**
   * The name of the bus eddo creates. Ignored when `eventBus` is given.
   * @default derived from the stack and this construct's id (`Staging-Eddo-1A2B3C4D`), so that
   * two instances (staging and prod) live in one account and Region
   */
  readonly eventBusName?: string;
  /**
   * An existing bus to use instead of creating one. The construct adds its archive, rules and
   * bus policy statements (their ids its own) to it. One eddo per bus: its statements keep each
   * eddo source to this instance's functions.
   * @default a new bus named `eventBusName`
   */
  readonly eventBus?: events.IEventBus;
  /**
   * How long the bus archive keeps events for replay; zero keeps them forever.
   * @default Duration.days(90)
   */
  readonly archiveRetention?: Duration;
  /**
   * The SSM parameter the stack creates to hold the policy, when it is kept in SSM.
   * @default derived from the stack and this construct's id (`/Staging-Eddo-1A2B3C4D/policy`)
   */
  readonly policyParameterName?: string;
  /**
   * Keep the policy in S3 (a file asset) even when it fits an SSM parameter.
   * @default only when the policy is over SSM's 8 KB
   */
  readonly policyInS3?: boolean;
  /**
   * The tier of the policy's SSM parameter. Never chosen by the policy's size: SSM refuses to
   * take an Advanced parameter back to Standard, so a policy that once grew past 4 KB would
   * fail a later deploy. A policy past the tier's limit (Standard 4 KB, Advanced 8 KB) fails
   * synth naming the fix; past 8 KB it is kept in S3 whatever the tier.
   * @default ssm.ParameterTier.STANDARD
   */
  readonly policyParameterTier?: ssm.ParameterTier;
  /**
   * The CodeBuild project a push to a tracked branch starts as the build: one of the policy's
   * build projects (`codebuild.Project.fromProjectName(this, 'Build', 'eddo-build')`, or a
   * Project of yours given that `projectName`). Its name must be known at synth, so it can be
   * checked against the policy. None: no build on push.
   */
  readonly buildProject?: codebuild.IProject;
  /**
   * The CodeBuild project a push to a tracked branch starts as the static analysis: one of the
   * policy's SAST projects, its name known at synth as for `buildProject`. None: no scan on push.
   */
  readonly sastProject?: codebuild.IProject;
  /**
   * Branches whose pushes start the build and SAST projects.
   * @default every branch the policy's services deploy from
   */
  readonly trackedBranches?: string[];
  /**
   * The event sources your control plane puts eddo's tenant requests from. A request from any
   * other source is no request.
   * @default none: eddo's tenant contract is off (sbt-aws's, when `sbt` is set, is not)
   */
  readonly tenantRequestSources?: string[];
  /**
   * The IAM roles (ARNs) of your control plane: the only principals that may put
   * `tenantRequestSources` and sbt-aws's control-plane source on the bus.
   * @default none: nobody may put them (synth warns when there are any)
   */
  readonly tenantRequestSenderRoleArns?: string[];
  /**
   * The control plane's roles, as roles (of this app or imported): added to
   * `tenantRequestSenderRoleArns`.
   * @default none
   */
  readonly tenantRequestSenders?: iam.IRole[];
  /**
   * sbt-aws's control plane on the eddo bus.
   * @default eddo's own tenant contract only
   */
  readonly sbt?: SbtOptions;
  /**
   * eddo's decisions as CDEvents, on the bus and to a sink.
   * @default none: no CDEvents are said
   */
  readonly cdevents?: CDEventsOptions;
  /**
   * Check runs on each candidate's commit, as your GitHub App.
   * @default none: the gate writes nothing to GitHub
   */
  readonly githubApp?: GitHubAppOptions;
  /**
   * Commit statuses on each candidate's commit in GitLab.
   * @default none: the gate writes nothing to GitLab
   */
  readonly gitlabStatuses?: GitLabStatusesOptions;
  /**
   * Where each function's logs go and for how long.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The functions' application log level.
   * @default LogLevel.INFO
   */
  readonly logLevel?: LogLevel;
  /**
   * Actions of every alarm the construct creates (the dead-letter queue's, each function's
   * errors): an SNS topic, say.
   * @default no actions
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];
  /**
   * How long a delivery id is remembered, 24 to 720 hours (GitHub allows redelivery for 3 days).
   * @default 72
   */
  readonly idempotencyHours?: number;
  /**
   * How long after a rotation of the webhook secret the previous version is still accepted,
   * in hours (0 to 720). After it, only the current one: revoking a leaked value takes one
   * rotation.
   * @default 24
   */
  readonly previousSecretGraceHours?: number;
  /**
   * PutEvents entry size limit eddo checks before each call, 1024 to 1048576.
   * @default 262144
   */
  readonly maxEntryBytes?: number;
  /**
   * How long each function uses a read of the policy before reading the parameter again, 1 to
   * 3600 seconds: a change is in force everywhere within this long.
   * @default 60
   */
  readonly policyCacheSeconds?: number;
  /**
   * As `policyCacheSeconds`, as a Duration (1 second to 1 hour; a token is passed through).
   * @default Duration.seconds(60)
   */
  readonly policyCache?: Duration;
  /**
   * What becomes of the state table (history, holds, known-bad versions, tenants) when it leaves
   * the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Per-function overrides, by binary: `webhook`, `scan-gate`, `alarm-rollback`,
   * `tenant-onboarding`.
   * @default none: 128 MB, arm64, active tracing, no VPC, each function's own timeout
   */
  readonly functions?: { [binary: string]: FunctionOverrides };
  /**
   * Events without a normalised form still published raw ("Git Provider Event"):
   * provider:event patterns, * for any event.
   * @default ['standard_webhooks:*']
   */
  readonly webhookForward?: string[];
  /**
   * Concurrency reserved for, and the most allowed to, the webhook function; 0 reserves none.
   * @default 20
   */
  readonly webhookReservedConcurrency?: number;
  /**
   * A customer-managed key for the webhook secret; the functions get kms:Decrypt on it through
   * Secrets Manager and SSM only.
   * @default AWS managed keys
   */
  readonly kmsKey?: kms.IKey;
}

/** What may be changed of one of eddo's functions. */
export interface FunctionOverrides {
  /** @default 128 */
  readonly memorySize?: number;
  /**
   * Keep the webhook's under GitHub's 10 seconds.
   * @default the function's own: 9 seconds for the webhook, 30 for the others
   */
  readonly timeout?: Duration;
  /** @default lambda.Tracing.ACTIVE */
  readonly tracing?: lambda.Tracing;
  /**
   * x86_64 only with `FunctionsFrom.SOURCE`: the package carries arm64 bootstraps.
   * @default lambda.Architecture.ARM_64
   */
  readonly architecture?: lambda.Architecture;
  /**
   * A VPC to run in; it needs a way to the AWS APIs eddo calls (NAT or VPC endpoints).
   * @default none
   */
  readonly vpc?: ec2.IVpc;
  /** @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** @default one the function creates */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /**
   * cargo-lambda's bundling, with `FunctionsFrom.SOURCE`.
   * @default arm64, the workspace's release profile
   */
  readonly bundling?: SourceBundling;
}

/**
 * How cargo-lambda builds a function from source (`FunctionsFrom.SOURCE`): the part of
 * cargo-lambda-cdk's bundling options a build of eddo may change, so that the package asks no
 * peer dependency on cargo-lambda-cdk of those who use its prebuilt functions.
 */
export interface SourceBundling {
  /**
   * More flags for `cargo lambda build` (`--features`, `--compiler cargo`, ...).
   * @default none
   */
  readonly cargoLambdaFlags?: string[];
  /**
   * Environment variables of the build.
   * @default none
   */
  readonly environment?: { [name: string]: string };
  /**
   * Build in cargo-lambda's Docker image even where cargo-lambda is installed.
   * @default false
   */
  readonly forcedDockerBundling?: boolean;
  /**
   * The cargo profile.
   * @default release
   */
  readonly profile?: string;
}
