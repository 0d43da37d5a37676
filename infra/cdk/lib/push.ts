/**
 * The push rule: a push to a tracked branch of a tracked repository starts the build and the SAST
 * scan of its commit, CodeBuild targets with no function in between.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import type * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SOURCES } from './wiring';

const field = (p: string) => events.EventField.fromPath(p);
const variable = (name: string, value: string) => ({ name, value, type: 'PLAINTEXT' });

/**
 * StartBuild's parameters from eddo's Git Push event for the `kind` (build or sast) target: the
 * source version is the commit, and the build gets the commit, repository, branch, correlation
 * id and the delivery that caused it. Every parameter comes from the delivery and so does the
 * idempotency token: a push the webhook published twice (an answer lost after PutEvents applied)
 * starts one build.
 */
function pushInput(kind: string): events.RuleTargetInput {
  const delivery = field('$.detail.metadata.causation_id');
  return events.RuleTargetInput.fromObject({
    sourceVersion: field('$.detail.commit_sha'),
    idempotencyToken: `eddo-push-${kind}-${delivery}`,
    environmentVariablesOverride: [
      variable('EDDO_COMMIT_SHA', field('$.detail.commit_sha')),
      variable('EDDO_REPOSITORY', field('$.detail.repository.full_name')),
      variable('EDDO_BRANCH', field('$.detail.branch')),
      variable('EDDO_CORRELATION_ID', field('$.detail.metadata.correlation_id')),
      variable('EDDO_CAUSATION_ID', delivery),
    ],
  });
}

/** What the push rule is made of. */
export interface PushRuleSpec {
  readonly eventBus: events.IEventBus;
  readonly deadLetterQueue: sqs.IQueue;
  /** The build and SAST projects (either may be absent). */
  readonly projects: Array<[string, codebuild.IProject | undefined]>;
  readonly branches: string[];
  readonly repositories: string[];
  /** Owners in place of repositories, once the repositories would not fit the pattern. */
  readonly owners: string[];
}

/**
 * The push rule in `scope`, or none when there is no project to start or no repository whose
 * pushes start one. The StartBuild parameters come from eddo's own Git Push event: the commit is
 * a checked 40-hex SHA, the branch a tracked one.
 */
export function pushRule(scope: Construct, spec: PushRuleSpec): events.Rule | undefined {
  const projects = spec.projects.filter((p): p is [string, codebuild.IProject] => p[1] !== undefined);
  const { repositories, owners } = spec;
  if (projects.length === 0 || (repositories.length === 0 && owners.length === 0)) {
    return undefined;
  }
  const stack = Stack.of(scope);
  const role = new iam.Role(scope, 'PushRuleRole', {
    description: 'Lets the push rule start exactly the build and SAST projects.',
    // EventBridge acting for a rule on eddo's bus only (the push rule is the one that names
    // this role), not for any rule of the account.
    assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
      conditions: {
        StringEquals: { 'aws:SourceAccount': stack.account },
        ArnLike: {
          'aws:SourceArn': stack.formatArn({ service: 'events', resource: 'rule', resourceName: `${spec.eventBus.eventBusName}/*` }),
        },
      },
    }),
  });
  return new events.Rule(scope, 'PushRule', {
    description: 'A push to a tracked branch starts the build and SAST projects on its commit.',
    eventBus: spec.eventBus,
    eventPattern: {
      source: [SOURCES.webhook],
      detailType: ['Git Push'],
      detail: {
        branch: spec.branches,
        // A push that names no commit (the webhook publishes only a checked one) builds nothing.
        commit_sha: [{ exists: true }],
        // The repositories named or, when the policy's would not fit the pattern's 2,048
        // characters, any repository of their owners.
        ...(owners.length === 0 ? { repository: { full_name: repositories } } : { repository: { owner: owners } }),
      },
    },
    targets: projects.map(([kind, project]) => new targets.CodeBuildProject(project, {
      eventRole: role,
      deadLetterQueue: spec.deadLetterQueue,
      maxEventAge: Duration.hours(1),
      retryAttempts: 20,
      event: pushInput(kind),
    })),
  });
}
