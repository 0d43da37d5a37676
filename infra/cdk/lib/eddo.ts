/**
 * The `Eddo` construct: eddo's four functions, its bus, state and wiring, as `template.yaml`
 * declares them for SAM, with the policy read and checked at synth so that every project list,
 * rule filter and grant comes from the policy itself.
 */
import * as path from 'node:path';
import { Annotations, ArnFormat, Duration, Fn, Names, RemovalPolicy, SecretValue, Stack, Tags, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { CheckedPolicy, EddoPolicy, WORKSPACE_MANIFEST } from './policy';
import { Grants } from './grants';
import { cdeventsRule } from './cdevents';
import { DASHBOARD_BODY } from './dashboard';
import { pushRule } from './push';
import { Prebuilt } from './prebuilt';
import { EddoProps, FunctionOverrides, FunctionsFrom, LogLevel, SbtGeneration, SbtOptions } from './props';
import { ASYNC_FAILURES, DLQ_REDRIVE, SECRET_ROTATION, SYNCHRONOUS, WILDCARDS, suppress } from './nag';
import { FINISHED, SIGNAL_SOURCE_TAG, SOURCES, busPolicies, claimBus, isOwnSource, policyCacheSeconds, tenantRequestPolicy, validateProps } from './wiring';

/** The largest value of an SSM Advanced parameter: a policy past it is kept in S3. */
const SSM_ADVANCED_BYTES = 8192;

/** sbt-aws's own names for each generation: its detail-types' prefix and default sources. */
const SBT_GENERATIONS: Record<SbtGeneration, { prefix: string; controlPlane: string; applicationPlane: string }> = {
  [SbtGeneration.CURRENT]: { prefix: 'sbt_aws_', controlPlane: 'sbt.control.plane', applicationPlane: 'sbt.application.plane' },
  [SbtGeneration.LEGACY]: { prefix: '', controlPlane: 'controlPlaneEventSource', applicationPlane: 'applicationPlaneEventSource' },
};

/** A function of eddo, as the construct builds it. */
interface FunctionSpec {
  readonly binary: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  /** Asynchronous invocations: two retries, then the dead-letter queue. */
  readonly asynchronous: boolean;
  readonly reservedConcurrency?: number;
  /** What its errors alarm says. */
  readonly errorsAlarm: string;
}

/** eddo on Amazon EventBridge: the bus, the state, the four functions and their wiring. */
export class Eddo extends Construct {
  public readonly eventBus: events.IEventBus;
  public readonly table: dynamodb.Table;
  public readonly webhookSecret: secretsmanager.Secret;
  /** Where the GitHub App's id and key go (with `githubApp`). */
  public readonly githubAppSecret?: secretsmanager.Secret;
  /** Where the GitLab access token goes (with `gitlabStatuses`). */
  public readonly gitlabTokenSecret?: secretsmanager.Secret;
  public readonly deadLetterQueue: sqs.Queue;
  /** The SSM parameter holding the policy; none when it is kept in S3. */
  public readonly policyParameter?: ssm.StringParameter;
  /** The policy's object in S3 (a file asset); none when it is kept in SSM. */
  public readonly policyObject?: s3assets.Asset;
  public readonly webhookFunction: lambda.Function;
  public readonly webhookUrl: lambda.FunctionUrl;
  public readonly scanGateFunction: lambda.Function;
  public readonly alarmRollbackFunction: lambda.Function;
  public readonly tenantOnboardingFunction: lambda.Function;
  /** The policy as read at synth. */
  public readonly policy: CheckedPolicy;
  /** Where the functions' code came from. */
  public readonly functionsFrom: FunctionsFrom;
  /** Every alarm the construct creates. */
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** The gate's metrics and the functions' health, as template.yaml's Dashboard. */
  public readonly dashboard: cloudwatch.CfnDashboard;
  /** Every rule the construct creates (on the eddo bus and on the default bus). */
  public readonly rules: events.Rule[] = [];
  /** The bus's archive, for replay. */
  public readonly archive: events.CfnArchive;

  private readonly props: EddoProps;
  private readonly prebuilt?: Prebuilt;
  private readonly logRetention: logs.RetentionDays;
  private readonly grants: Grants;

  constructor(scope: Construct, id: string, props: EddoProps) {
    super(scope, id);
    const manifestPath = props.manifestPath ?? WORKSPACE_MANIFEST;
    this.policy = EddoPolicy.check(props.policyFile, props.eddoCommand ?? EddoPolicy.command(props.manifestPath));
    this.functionsFrom = props.functionsFrom ?? (props.manifestPath === undefined && Prebuilt.carried() ? FunctionsFrom.PREBUILT : FunctionsFrom.SOURCE);
    this.prebuilt = this.functionsFrom === FunctionsFrom.PREBUILT ? Prebuilt.load() : undefined;
    validateProps(props, this.policy);
    this.props = { ...props, manifestPath };
    this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // Every name the user does not give is this instance's own: two instances never share one.
    const unique = Names.uniqueResourceName(this, { maxLength: 200, separator: '-' });
    this.eventBus = props.eventBus ?? new events.EventBus(this, 'EventBus', { eventBusName: props.eventBusName ?? unique });
    this.archive = new events.CfnArchive(this, 'EventArchive', {
      description: 'Every event on the eddo bus, for audit and replay.',
      sourceArn: this.eventBus.eventBusArn,
      retentionDays: (props.archiveRetention ?? Duration.days(90)).toDays(),
    });
    this.table = this.stateTable();
    const webhookSecret = new secretsmanager.Secret(this, 'WebhookSecret', {
      description:
        'eddo webhook secrets, a JSON object: github (X-Hub-Signature-256 secret), gitlab (X-Gitlab-Token), ' +
        'gitlab_signing and standard_webhooks (whsec_ signing secrets), senders.<name> (signal and CDEvents senders\' keys), tokens.<name> (CDEvents and alert senders\' tokens). ' +
        'A provider without a value refuses every delivery.',
      encryptionKey: props.kmsKey,
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'github',
        passwordLength: 48,
        excludePunctuation: true,
      },
    });
    suppress(webhookSecret, [SECRET_ROTATION]);
    this.webhookSecret = webhookSecret;
    if (props.githubApp) {
      this.githubAppSecret = new secretsmanager.Secret(this, 'GitHubAppSecret', {
        description:
          'eddo\'s GitHub App, a JSON object: app_id (or client_id) and private_key (the PEM GitHub gave you). ' +
          'Read by the gate at its first check run and again every 5 minutes.',
        encryptionKey: props.kmsKey,
        // Not a secret: the operator puts the App's key in after deploying.
        secretStringValue: SecretValue.unsafePlainText('{}'),
      });
      suppress(this.githubAppSecret, [SECRET_ROTATION]);
    }
    if (props.gitlabStatuses) {
      this.gitlabTokenSecret = new secretsmanager.Secret(this, 'GitLabTokenSecret', {
        description:
          'eddo\'s GitLab access token, a JSON object: token (a project or group access token, scope api, role Developer). ' +
          'Read by the gate at its first commit status and again every 5 minutes, and at once when GitLab refuses it.',
        encryptionKey: props.kmsKey,
        // Not a secret: the operator puts the token in after deploying.
        secretStringValue: SecretValue.unsafePlainText('{}'),
      });
      suppress(this.gitlabTokenSecret, [SECRET_ROTATION]);
    }
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    suppress(this.deadLetterQueue, [DLQ_REDRIVE]);
    this.alarm('DeadLetterQueueAlarm', 'An eddo event could not be delivered and waits in the dead-letter queue.',
      this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5) }));
    // SSM while it fits a parameter (nothing to set up), else S3 (any size the functions read).
    const bytes = Buffer.byteLength(this.policy.text);
    if (props.policyInS3 || bytes > SSM_ADVANCED_BYTES) {
      this.policyObject = new s3assets.Asset(this, 'PolicyObject', { path: this.policy.file });
    } else {
      const tier = props.policyParameterTier ?? ssm.ParameterTier.STANDARD;
      if (tier === ssm.ParameterTier.STANDARD && bytes > 4096) {
        throw new Error(`Eddo: policyFile: ${this.policy.file} is ${bytes} bytes, past a Standard parameter's 4096: ` +
          'set policyParameterTier: ParameterTier.ADVANCED (up to 8 KB; SSM cannot take it back to Standard) or policyInS3: true');
      }
      this.policyParameter = new ssm.StringParameter(this, 'PolicyParameter', {
        parameterName: props.policyParameterName ?? `/${unique}/policy`,
        description: `eddo policy, from ${path.basename(this.policy.file)} at synth`,
        stringValue: this.policy.text,
        tier,
      });
    }

    this.grants = new Grants(Stack.of(this), {
      eventBus: this.eventBus,
      table: this.table,
      kmsKey: props.kmsKey,
      policyParameter: this.policyParameter,
      policyObject: this.policyObject,
      // Checked with the other props (validateProps).
      policyCacheSeconds: policyCacheSeconds(props),
    });
    this.webhookFunction = this.webhook();
    this.webhookUrl = this.webhookFunction.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    this.scanGateFunction = this.scanGate();
    this.alarmRollbackFunction = this.alarmRollback();
    this.tenantOnboardingFunction = this.tenantOnboarding();
    this.dashboard = new cloudwatch.CfnDashboard(this, 'Dashboard', {
      dashboardBody: Fn.sub(DASHBOARD_BODY, {
        WebhookFunction: this.webhookFunction.functionName,
        ScanGateFunction: this.scanGateFunction.functionName,
        AlarmRollbackFunction: this.alarmRollbackFunction.functionName,
        TenantOnboardingFunction: this.tenantOnboardingFunction.functionName,
        DeadLetterQueueName: this.deadLetterQueue.queueName,
      }),
    });
    const push = pushRule(this, {
      eventBus: this.eventBus,
      deadLetterQueue: this.deadLetterQueue,
      projects: [['build', props.buildProject], ['sast', props.sastProject]],
      branches: props.trackedBranches ?? this.policy.lists.branches,
      repositories: this.policy.lists.repositories,
      owners: this.policy.lists.owners,
    });
    if (push) {
      this.keep(push);
    }
    if (props.cdevents?.sink) {
      this.keep(cdeventsRule(this, { eventBus: this.eventBus, deadLetterQueue: this.deadLetterQueue, sink: props.cdevents.sink }));
    }

    const requestSources = [
      ...(props.tenantRequestSources ?? []),
      ...(props.sbt ? [this.sbtControlPlaneSource(props.sbt)] : []),
    ];
    // The tenant contracts' sources are not signal sources: their own statement guards them.
    const answers = props.sbt
      ? [props.sbt.applicationPlaneEventSource ?? SBT_GENERATIONS[props.sbt.generation ?? SbtGeneration.CURRENT].applicationPlane]
      : [];
    // A bus of its own: its statement ids are unique on it. A bus given: this instance's own ids,
    // beside whatever else the bus's policy holds; but one eddo per bus, since its statements
    // keep each eddo source to one instance's function.
    if (props.eventBus) {
      claimBus(this, props.eventBus);
    }
    const sidSuffix = props.eventBus ? `-${this.node.addr.slice(0, 8)}` : '';
    busPolicies(this, this.eventBus, sidSuffix, {
      'eddo.webhook': this.webhookFunction.role!,
      'eddo.gate': this.scanGateFunction.role!,
      'eddo.rollback': this.alarmRollbackFunction.role!,
      'eddo.tenants': this.tenantOnboardingFunction.role!,
    }, [...requestSources, ...answers]);
    const senders = [...(props.tenantRequestSenderRoleArns ?? []), ...(props.tenantRequestSenders ?? []).map((r) => r.roleArn)];
    tenantRequestPolicy(this, this.eventBus, sidSuffix, requestSources, senders);
    if (requestSources.length > 0 && senders.length === 0) {
      Annotations.of(this).addWarningV2('eddo:no-tenant-request-senders',
        `tenant requests come from ${requestSources.join(', ')} but no sender is given (tenantRequestSenderRoleArns, tenantRequestSenders): the bus policy lets nobody put them`);
    }
  }

  /**
   * Lets `role` report gate signals as `source` (a tool of yours: a scanner, a test runner): tags
   * it `eddo:signal-source=source`, which the bus policy asks of whoever puts that source, and
   * grants it PutEvents on the eddo bus for that source alone. A service's policy must still name
   * the sender for the gate to admit its signals.
   */
  public grantPutSignal(role: iam.Role, source: string): iam.Grant {
    if (!Token.isUnresolved(source) && !isOwnSource(source)) {
      throw new Error(`Eddo.grantPutSignal: ${JSON.stringify(source)} is not an event source of yours`);
    }
    Tags.of(role).add(SIGNAL_SOURCE_TAG, source);
    return iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['events:PutEvents'],
      resourceArns: [this.eventBus.eventBusArn],
      conditions: { StringEquals: { 'events:source': source } },
    });
  }

  /**
   * A rule on the eddo bus for every decision eddo says (the gate's deployments, alarm-rollback's
   * rollbacks, tenant-onboarding's provisioning: their sources), with `options`' target,
   * description and further pattern.
   */
  public onDecision(id: string, options: events.OnEventOptions = {}): events.Rule {
    const rule = new events.Rule(this, id, {
      eventBus: this.eventBus,
      description: options.description,
      ruleName: options.ruleName,
      eventPattern: {
        ...options.eventPattern,
        source: [SOURCES.gate, SOURCES.rollback, SOURCES.tenants],
      },
    });
    if (options.target) {
      rule.addTarget(options.target);
    }
    return rule;
  }

  /** A rule of the construct's own, kept in `rules`. */
  private keep(rule: events.Rule): events.Rule {
    this.rules.push(rule);
    return rule;
  }

  private stateTable(): dynamodb.Table {
    const table = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: this.props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    // Sparse: gate candidates still waiting for signals (by deadline) and decided ones whose work
    // is owed, each list sharded by commit; keys only (the sweep reads each candidate whole).
    table.addGlobalSecondaryIndex({
      indexName: 'open-deadline',
      partitionKey: { name: 'open_pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'open_sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    return table;
  }

  /** One of eddo's functions: arm64, provided.al2023, JSON logs to its own log group, X-Ray. */
  private fn(id: string, spec: FunctionSpec): lambda.Function {
    const logGroup = new logs.LogGroup(this, `${id}LogGroup`, {
      retention: this.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Its own role: its own log group, and what each function grants below (no managed policy,
    // whose logs grant is on every log group of the account).
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `eddo ${spec.binary}: its own logs, and exactly what it calls`,
    });
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteItsOwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    // Its policy, made by the statement above, carries the reasons of the wildcards each function's
    // grants below hold (cdk-nag's AwsSolutions-IAM5).
    suppress(role.node.findChild('DefaultPolicy'), WILDCARDS[spec.binary] ?? []);
    const o: FunctionOverrides = this.props.functions?.[spec.binary] ?? {};
    const architecture = o.architecture ?? lambda.Architecture.ARM_64;
    if (this.prebuilt && architecture !== lambda.Architecture.ARM_64) {
      throw new Error(`Eddo: functions.${spec.binary}.architecture: the package's functions are arm64; build from source (FunctionsFrom.SOURCE) for another`);
    }
    const common: lambda.FunctionOptions = {
      role,
      architecture,
      description: spec.description,
      memorySize: o.memorySize ?? 128,
      timeout: o.timeout ?? spec.timeout,
      tracing: o.tracing ?? lambda.Tracing.ACTIVE,
      vpc: o.vpc,
      vpcSubnets: o.vpcSubnets,
      securityGroups: o.securityGroups,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel[this.props.logLevel ?? LogLevel.INFO],
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      logGroup,
      reservedConcurrentExecutions: spec.reservedConcurrency,
      environment: {
        EDDO_EVENT_BUS_NAME: this.eventBus.eventBusName,
        EDDO_TABLE_NAME: this.table.tableName,
        EDDO_MAX_ENTRY_BYTES: String(this.props.maxEntryBytes ?? 262144),
        EDDO_CDEVENTS: this.props.cdevents?.sink !== undefined || this.props.cdevents?.onBus === true ? 'on' : 'off',
        ...spec.environment,
      },
      ...(spec.asynchronous
        ? { deadLetterQueue: this.deadLetterQueue, retryAttempts: 2, maxEventAge: Duration.hours(6) }
        : {}),
    };
    // The package's arm64 bootstrap, or one cargo-lambda builds from the workspace at synth.
    const f = this.prebuilt
      ? new lambda.Function(this, `${id}Function`, {
        ...common,
        code: lambda.Code.fromAsset(this.prebuilt.code(spec.binary)),
        handler: 'bootstrap',
        runtime: lambda.Runtime.PROVIDED_AL2023,
      })
      : new RustFunction(this, `${id}Function`, {
        ...common,
        manifestPath: this.props.manifestPath,
        binaryName: spec.binary,
        bundling: { architecture, ...o.bundling },
      });
    // The binary it runs, for tools that read the template (the local stack).
    (f.node.defaultChild as lambda.CfnFunction).addMetadata('eddo:binary', spec.binary);
    suppress(spec.asynchronous ? f.node.findChild('EventInvokeConfig') : f, [spec.asynchronous ? ASYNC_FAILURES : SYNCHRONOUS]);
    this.alarm(`${id}ErrorsAlarm`, spec.errorsAlarm, f.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }));
    return f;
  }

  private alarm(id: string, description: string, metric: cloudwatch.IMetric): void {
    const alarm = new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric,
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const action of this.props.alarmActions ?? []) {
      alarm.addAlarmAction(action);
    }
    this.alarms.push(alarm);
  }

  /**
   * `f` as a rule's target: an event EventBridge could not deliver (a throttled or refused
   * invoke, after its retries) goes to the dead-letter queue.
   */
  private target(f: lambda.Function): targets.LambdaFunction {
    return new targets.LambdaFunction(f, { deadLetterQueue: this.deadLetterQueue });
  }

  /** A rule invoking `f` (asynchronously, as EventBridge does). */
  private rule(id: string, f: lambda.Function, bus: events.IEventBus | undefined, pattern: events.EventPattern): void {
    this.keep(new events.Rule(this, id, { eventBus: bus, eventPattern: pattern, targets: [this.target(f)] }));
  }

  /**
   * Every build finishing, on the default bus (where CodeBuild reports): no project list, so the
   * pattern does not grow with the policy; the function keeps its policy's projects' in code.
   */
  private builds(id: string, f: lambda.Function): void {
    this.rule(id, f, undefined, {
      source: ['aws.codebuild'],
      detailType: ['CodeBuild Build State Change'],
      detail: { 'build-status': FINISHED },
    });
  }

  private webhook(): lambda.Function {
    const p = this.props;
    const concurrency = p.webhookReservedConcurrency ?? 20;
    const f = this.fn('Webhook', {
      binary: 'webhook',
      description: 'Verifies GitHub, GitLab and Standard Webhooks deliveries and publishes them to the eddo bus.',
      // GitHub waits 10 s for an answer; AWS calls are bounded well inside this.
      timeout: Duration.seconds(9),
      asynchronous: false,
      errorsAlarm: 'The webhook function failed invocations (deliveries answered with a runtime error).',
      reservedConcurrency: concurrency === 0 ? undefined : concurrency,
      environment: {
        EDDO_WEBHOOK_SECRET_ARN: this.webhookSecret.secretArn,
        EDDO_WEBHOOK_FORWARD: (p.webhookForward ?? ['standard_webhooks:*']).join(','),
        EDDO_IDEMPOTENCY_HOURS: String(p.idempotencyHours ?? 72),
        EDDO_PREVIOUS_SECRET_GRACE_HOURS: String(p.previousSecretGraceHours ?? 24),
      },
    });
    this.grants.publishes(f, SOURCES.webhook);
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'ReadTheWebhookSecret',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [this.webhookSecret.secretArn],
    }));
    this.grants.decrypts(f, 'DecryptTheWebhookSecret', 'secretsmanager');
    // The internet-facing function reaches only its own delivery records.
    this.grants.items(f, 'IdempotencyRecords', ['GetItem', 'PutItem', 'UpdateItem'], ['idem#webhook#*']);
    return f;
  }

  private scanGate(): lambda.Function {
    const f = this.fn('ScanGate', {
      binary: 'scan-gate',
      errorsAlarm: 'The scan gate failed invocations (retried, then dead-lettered).',
      description:
        'Deploys a version of a service only once every signal its policy requires has passed, before its deadline; ' +
        'blocks or times it out otherwise, with every reason.',
      timeout: Duration.seconds(30),
      asynchronous: true,
      environment: {
        ...(this.githubAppSecret
          ? {
            EDDO_GITHUB_APP_SECRET: this.githubAppSecret.secretArn,
            EDDO_GITHUB_API: this.props.githubApp?.apiUrl ?? 'https://api.github.com',
          }
          : {}),
        ...(this.gitlabTokenSecret
          ? {
            EDDO_GITLAB_TOKEN_SECRET: this.gitlabTokenSecret.secretArn,
            EDDO_GITLAB_API: this.props.gitlabStatuses?.apiUrl ?? 'https://gitlab.com/api/v4',
          }
          : {}),
      },
    });
    this.grants.publishes(f, SOURCES.gate);
    // Its candidates and images, their check runs and statuses, and the services' history and
    // rollback holds.
    this.grants.items(f, 'CandidatesAndHistory', ['GetItem', 'UpdateItem', 'ConditionCheckItem', 'Query'],
      ['candidate#*', 'digest#*', 'service#*', 'check#*', 'status#*', 'rule#*', 'pushed#*']);
    if (this.githubAppSecret) {
      f.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ReadTheGitHubAppKey',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.githubAppSecret.secretArn],
      }));
      this.grants.decrypts(f, 'DecryptTheGitHubAppKey', 'secretsmanager');
    }
    if (this.gitlabTokenSecret) {
      f.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ReadTheGitLabToken',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.gitlabTokenSecret.secretArn],
      }));
      this.grants.decrypts(f, 'DecryptTheGitLabToken', 'secretsmanager');
    }
    // The evidence ledger: each admitted signal put once beside its candidate (or its image,
    // before a build reports it), never updated.
    this.grants.items(f, 'EvidenceLedger', ['PutItem'], ['candidate#*', 'digest#*']);
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'DeadlineSweep',
      actions: ['dynamodb:Query'],
      resources: [`${this.table.tableArn}/index/open-deadline`],
    }));
    this.grants.readsPolicy(f, 'scan-gate');
    // An ECR scan counts only as ECR itself accounts for it (the same call reads its findings
    // for exceptions), and only in repositories tagged eddo:service.
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'ConfirmScansOfTaggedRepositories',
      actions: ['ecr:DescribeImageScanFindings'],
      resources: [Stack.of(this).formatArn({ service: 'ecr', resource: 'repository', resourceName: '*' })],
      conditions: { Null: { 'aws:ResourceTag/eddo:service': 'false' } },
    }));
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'ConfirmInspectorScans',
      actions: ['inspector2:ListFindings'],
      // ListFindings has no resource-level permissions.
      resources: ['*'],
    }));
    this.grants.starts(f, 'StartDeployProjects', 'deploy');
    // A build's state change counts only as CodeBuild itself describes the build (its status,
    // its exported image, the commit it resolved), since anyone who may put events can write one.
    this.grants.byRole(f, 'ConfirmBuilds', ['codebuild:BatchGetBuilds'], ['build', 'sast', 'rollback']);
    this.builds('ScanGateBuilds', f);
    this.rule('ScanGateScans', f, undefined, {
      source: ['aws.ecr', 'aws.inspector2'],
      detailType: ['ECR Image Scan', 'Inspector2 Scan'],
    });
    // What the webhook verified for the gate: completed GitHub checks, and CDEvents from the
    // senders it authenticated (/cdevents/<sender>).
    this.rule('ScanGateChecks', f, this.eventBus, {
      source: [SOURCES.webhook],
      detailType: ['Git Push', 'Check Run Completed', 'Workflow Run Completed', 'Deployment Protection Rule', 'CDEvent Received'],
    });
    // Other tools' signals: signed through the webhook, or put by a role tagged with their
    // source (the bus policy). Any source: the gate admits each only from a sender its service's
    // policy names, so the pattern does not grow with the policy.
    this.rule('ScanGateReported', f, this.eventBus, {
      detailType: ['Signal Reported', 'Scan Completed', 'Deployment Approval'],
    });
    // Candidates past their deadline time out within a minute, without a human.
    this.keep(new events.Rule(this, 'ScanGateDeadline', {
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [this.target(f)],
    }));
    return f;
  }

  private alarmRollback(): lambda.Function {
    const f = this.fn('AlarmRollback', {
      binary: 'alarm-rollback',
      errorsAlarm: 'alarm-rollback failed invocations (retried, then dead-lettered).',
      description:
        'Rolls a service back to its last known-good version when an alarm fires while a release bakes, once, ' +
        'through its rollback project; says why, or why not.',
      timeout: Duration.seconds(30),
      asynchronous: true,
      environment: {},
    });
    this.grants.publishes(f, SOURCES.rollback);
    this.grants.items(f, 'HistoryRollbacksAndAlarmChanges', ['GetItem', 'PutItem', 'UpdateItem', 'Query'], ['service#*', 'alarm#*']);
    // A state change starts a rollback only as CloudWatch itself shows the alarm (its state; its
    // eddo:service tag where the event's chose the service).
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'ConfirmTheAlarms',
      actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:ListTagsForResource'],
      resources: [Stack.of(this).formatArn({
        service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      })],
    }));
    this.grants.readsPolicy(f, 'alarm-rollback');
    this.grants.starts(f, 'StartRollbackProjects', 'rollback');
    // INSUFFICIENT_DATA acts where a policy says so; OK is the recoveries rule's.
    this.rule('AlarmRollbackAlarms', f, undefined, {
      source: ['aws.cloudwatch'],
      detailType: ['CloudWatch Alarm State Change'],
      detail: { state: { value: ['ALARM', 'INSUFFICIENT_DATA'] } },
    });
    // An alarm back to OK from ALARM: the incident over, if it rolled its service back.
    this.rule('AlarmRollbackRecoveries', f, undefined, {
      source: ['aws.cloudwatch'],
      detailType: ['CloudWatch Alarm State Change'],
      detail: { state: { value: ['OK'] }, previousState: { value: ['ALARM'] } },
    });
    // Prometheus Alertmanager and Grafana alerts the webhook authenticated: firing may roll
    // back, resolved may end the incident.
    this.rule('AlarmRollbackAlerts', f, this.eventBus, {
      source: ['eddo.webhook'],
      detailType: ['Alert Received'],
      detail: { status: ['firing', 'resolved'] },
    });
    this.builds('AlarmRollbackBuilds', f);
    // An alarm's own Lambda action may invoke it directly (any alarm of this account and Region;
    // the policy decides which alarms roll back what).
    f.addPermission('AlarmAction', {
      action: 'lambda:InvokeFunction',
      principal: new iam.ServicePrincipal('lambda.alarms.cloudwatch.amazonaws.com'),
      sourceAccount: Stack.of(this).account,
      sourceArn: Stack.of(this).formatArn({
        service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    });
    return f;
  }

  /** The source of sbt-aws's control-plane requests. */
  private sbtControlPlaneSource(sbt: SbtOptions): string {
    const names = SBT_GENERATIONS[sbt.generation ?? SbtGeneration.CURRENT];
    if (names === undefined) {
      throw new Error(`sbt.generation: ${String(sbt.generation)} is not current or legacy`);
    }
    return sbt.controlPlaneEventSource ?? names.controlPlane;
  }

  private tenantOnboarding(): lambda.Function {
    const sbt = this.props.sbt;
    const generation = sbt?.generation ?? SbtGeneration.CURRENT;
    const names = SBT_GENERATIONS[generation];
    if (names === undefined) {
      throw new Error(`sbt.generation: ${String(generation)} is not current or legacy`);
    }
    const controlPlane = sbt ? this.sbtControlPlaneSource(sbt) : names.controlPlane;
    const answers = sbt?.applicationPlaneEventSource ?? names.applicationPlane;
    const f = this.fn('TenantOnboarding', {
      binary: 'tenant-onboarding',
      errorsAlarm: 'tenant-onboarding failed invocations (retried, then dead-lettered).',
      description:
        'Provisions each new SaaS tenant once through its tier\'s CodeBuild project, retries as the tier allows, ' +
        'offboards it the same way, and says how it went.',
      timeout: Duration.seconds(30),
      asynchronous: true,
      environment: {
        EDDO_TENANT_REQUEST_SOURCES: (this.props.tenantRequestSources ?? []).join(','),
        EDDO_SBT_CONTROL_PLANE_SOURCE: sbt ? controlPlane : '',
        EDDO_SBT_GENERATION: generation,
        EDDO_SBT_APPLICATION_PLANE_SOURCE: answers,
      },
    });
    this.grants.publishes(f, SOURCES.tenants, ...(sbt ? [answers] : []));
    this.grants.items(f, 'TenantRegistry', ['GetItem', 'PutItem', 'UpdateItem'], ['tenant#*']);
    this.grants.readsPolicy(f, 'tenant-onboarding');
    this.grants.starts(f, 'StartTenantProjects', 'tenant');
    // eddo's contract, from the control plane's sources only.
    const requestSources = this.props.tenantRequestSources ?? [];
    if (requestSources.length > 0) {
      this.rule('TenantOnboardingRequests', f, this.eventBus, {
        source: requestSources,
        detailType: ['Tenant Onboarding Requested', 'Tenant Offboarding Requested'],
      });
    }
    this.builds('TenantOnboardingBuilds', f);
    if (sbt) {
      // sbt-aws's control plane: its requests on the eddo bus, answered in its shape.
      this.keep(new events.Rule(this, 'TenantOnboardingSbtRule', {
        description: 'sbt-aws onboarding and offboarding requests to tenant-onboarding.',
        eventBus: this.eventBus,
        eventPattern: {
          source: [controlPlane],
          detailType: ['onboardingRequest', 'offboardingRequest'].map((name) => names.prefix + name),
        },
        targets: [new targets.LambdaFunction(f, {
          deadLetterQueue: this.deadLetterQueue,
          maxEventAge: Duration.hours(24),
          retryAttempts: 185,
        })],
      }));
    }
    return f;
  }
}
