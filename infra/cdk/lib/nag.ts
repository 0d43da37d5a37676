/**
 * What cdk-nag (the AwsSolutions and Serverless packs) would report of the construct and it
 * keeps on purpose, each with its reason, suppressed on the one resource it concerns through the
 * metadata cdk-nag reads: no dependency on cdk-nag, nothing suppressed by path or for a stack.
 */
import { CfnResource } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * A cdk-nag rule suppressed on one resource: the rule, why, and (for a rule that names what it
 * found, as AwsSolutions-IAM5 names each wildcard) the findings it covers, as regular expressions.
 */
export type Suppression = [rule: string, reason: string, findings?: string[]];

/**
 * Suppresses `rules` on `construct`'s own resource (its default child), each with its reason, as
 * cdk-nag reads suppressions from a resource's metadata: no dependency on cdk-nag, and nothing
 * suppressed by path or for the whole stack.
 */
export function suppress(construct: IConstruct, rules: Suppression[]): void {
  const resource = (construct.node.defaultChild ?? construct) as CfnResource;
  const known = (resource.getMetadata('cdk_nag') as { rules_to_suppress?: unknown[] } | undefined)?.rules_to_suppress ?? [];
  resource.addMetadata('cdk_nag', {
    rules_to_suppress: [
      ...known,
      ...rules.map(([id, reason, findings]) => ({
        id,
        reason,
        ...(findings ? { applies_to: findings.map((f) => ({ regex: `/${f}/` })) } : {}),
      })),
    ],
  });
}

/** The webhook secret's rotation. */
export const SECRET_ROTATION: Suppression = ['AwsSolutions-SMG4',
  'The values are shared with GitHub, GitLab and signal senders, which a rotation function cannot update: they are ' +
  'rotated by hand, the previous version still accepted for previousSecretGraceHours (docs/src/configuration.md).'];

/** The dead-letter queue's own redrive. */
export const DLQ_REDRIVE: Suppression = ['Serverless-SQSRedrivePolicy',
  'This is the dead-letter queue: what lands here is redriven by hand once its cause is fixed (docs/src/failures.md).'];

/** An asynchronous function's failures: its dead-letter queue, not a destination. */
export const ASYNC_FAILURES: Suppression = ['Serverless-LambdaAsyncFailureDestination',
  'A failed asynchronous invocation goes to the dead-letter queue (DeadLetterConfig) after two retries, at most 6 hours old: ' +
  'the same queue as every rule target\'s, one place to watch and redrive.'];

/** The webhook, invoked synchronously. */
export const SYNCHRONOUS: Suppression = ['Serverless-LambdaDLQ',
  'Invoked synchronously by its function URL: a failure is the HTTP answer, and the provider redelivers.'];

/**
 * The wildcards of each function's grants, by binary (AwsSolutions-IAM5): only actions without
 * resource-level permissions, and resources narrowed by a tag condition so that the grant does
 * not grow with the policy.
 */
// As cdk-nag renders them: arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:...
const arn = (service: string, resource: string) => `^Resource::arn:.+:${service}:.+:${resource}$`;
const xray: Suppression = ['AwsSolutions-IAM5',
  'X-Ray\'s PutTraceSegments and PutTelemetryRecords (Tracing: Active) have no resource-level permissions.', ['^Resource::\\*$']];
const projects = (role: string): Suppression => ['AwsSolutions-IAM5',
  `Projects only as tagged eddo:role=${role} (aws:ResourceTag): one statement however many projects the policy names; ` +
  'the function still refuses, in code, a project its policy does not give the service at hand.', [arn('codebuild', 'project/\\*')]];
export const WILDCARDS: Record<string, Suppression[]> = {
  'webhook': [xray],
  'scan-gate': [
    ['AwsSolutions-IAM5', 'X-Ray\'s PutTraceSegments and PutTelemetryRecords, and Inspector\'s ListFindings (confirming a scan), ' +
      'have no resource-level permissions.', ['^Resource::\\*$']],
    ['AwsSolutions-IAM5', 'DescribeImageScanFindings only on repositories tagged eddo:service (aws:ResourceTag); which ' +
      'service\'s image a scan is, the policy decides in code.', [arn('ecr', 'repository/\\*')]],
    ['AwsSolutions-IAM5', 'Deploy projects (eddo:role=deploy) to start, build and SAST projects (eddo:role=build|sast) to ' +
      'confirm builds, by tag (aws:ResourceTag): one statement however many projects the policy names.', [arn('codebuild', 'project/\\*')]],
  ],
  'alarm-rollback': [xray, projects('rollback'),
    ['AwsSolutions-IAM5', 'DescribeAlarms and ListTagsForResource to confirm an alarm\'s state and its eddo:service tag; ' +
      'which alarms roll back what, the policy decides in code.', [arn('cloudwatch', 'alarm:\\*')]]],
  'tenant-onboarding': [xray, projects('tenant')],
};
