/**
 * What the `Eddo` construct's parts share: eddo's event sources, the bus policy that keeps each
 * source to its owner, the push rule's StartBuild input, and the checks of the props against the
 * policy.
 */
import { Token } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { EddoProps } from './props';
import type { CheckedPolicy } from './policy';

/** The largest policy the functions read (eddo::policy::MAX_OBJECT_BYTES, 32 MiB). */
const MAX_OBJECT_BYTES = 32 * 1024 * 1024;

/** The source each function publishes as. */
export const SOURCES = {
  webhook: 'eddo.webhook',
  gate: 'eddo.gate',
  rollback: 'eddo.rollback',
  tenants: 'eddo.tenants',
} as const;

/** The build statuses that end a build. */
export const FINISHED = ['SUCCEEDED', 'FAILED', 'FAULT', 'TIMED_OUT', 'STOPPED'];

/** The construct id and statement id of the deny that keeps `source` to its function's role. */
const OWNER_STATEMENTS: Record<string, [string, string]> = {
  [SOURCES.webhook]: ['WebhookSourcePolicy', 'OnlyTheWebhookPutsEddoWebhook'],
  [SOURCES.gate]: ['GateSourcePolicy', 'OnlyTheGatePutsEddoGate'],
  [SOURCES.rollback]: ['RollbackSourcePolicy', 'OnlyAlarmRollbackPutsEddoRollback'],
  [SOURCES.tenants]: ['TenantsSourcePolicy', 'OnlyTenantOnboardingPutsEddoTenants'],
};

function deny(scope: Construct, id: string, bus: events.IEventBus, sid: string, condition: Record<string, unknown>) {
  new events.CfnEventBusPolicy(scope, id, {
    eventBusName: bus.eventBusName,
    statementId: sid,
    statement: {
      Effect: 'Deny',
      Principal: '*',
      Action: 'events:PutEvents',
      Resource: bus.eventBusArn,
      Condition: condition,
    },
  });
}

/**
 * Who may put which source on the bus. Only AWS puts aws.* (on the default bus); these deny every
 * principal but its function's role each eddo source, and any other eddo.* source to all. Every
 * other source but the tenant contracts' (`notSignals`, guarded by their own statement) is a
 * tool's signal source, which only a role tagged eddo:signal-source with that very source may
 * put: two statements of fixed size, however many tools or services (the bus policy's quota is
 * 10,240 characters). An explicit deny in the bus policy wins over any identity policy in the
 * account. Each statement id ends with `sidSuffix` (unique to the instance on a shared bus).
 */
export function busPolicies(
  scope: Construct,
  bus: events.IEventBus,
  sidSuffix: string,
  owners: Record<string, iam.IRole>,
  notSignals: string[],
): void {
  deny(scope, 'EddoSourcesPolicy', bus, `OnlyEddoFunctionsPutEddoSources${sidSuffix}`, {
    StringLike: { 'events:source': 'eddo.*' },
    StringNotEquals: { 'events:source': Object.keys(owners) },
  });
  for (const [source, role] of Object.entries(owners)) {
    const [id, sid] = OWNER_STATEMENTS[source];
    deny(scope, id, bus, `${sid}${sidSuffix}`, {
      StringEquals: { 'events:source': source },
      ArnNotEquals: { 'aws:PrincipalArn': role.roleArn },
    });
  }
  const signals = { 'events:source': ['eddo.*', 'aws.*'] };
  deny(scope, 'SignalSourceTagPolicy', bus, `EachSignalSourceOnlyFromItsTaggedRoles${sidSuffix}`, {
    StringNotLike: signals,
    StringNotEquals: { 'events:source': [`\${aws:PrincipalTag/${SIGNAL_SOURCE_TAG}}`, ...notSignals] },
  });
  deny(scope, 'SignalSourceUntaggedPolicy', bus, `SignalSourcesOnlyFromTaggedRoles${sidSuffix}`, {
    StringNotLike: signals,
    ...(notSignals.length > 0 ? { StringNotEquals: { 'events:source': notSignals } } : {}),
    Null: { [`aws:PrincipalTag/${SIGNAL_SOURCE_TAG}`]: 'true' },
  });
}

/** The tag a CodeBuild project carries for eddo's grants to reach it: its role. */
export const ROLE_TAG = 'eddo:role';

/** The tag on a signal sender's role naming the one source it may put. */
export const SIGNAL_SOURCE_TAG = 'eddo:signal-source';

/**
 * A tenant request can deprovision a tenant: its sources (eddo's contract, sbt-aws's control
 * plane) only from the control plane's roles. No role listed: nobody may put them.
 */
export function tenantRequestPolicy(
  scope: Construct,
  bus: events.IEventBus,
  sidSuffix: string,
  sources: string[],
  senderRoles: string[],
): void {
  if (sources.length > 0) {
    deny(scope, 'TenantRequestSourcesPolicy', bus, `OnlyTheControlPlanePutsTenantRequests${sidSuffix}`, {
      StringEquals: { 'events:source': sources },
      ...(senderRoles.length > 0 ? { ArnNotEquals: { 'aws:PrincipalArn': senderRoles } } : {}),
    });
  }
}

const ROLE_ARN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[A-Za-z0-9+=,.@_/-]{1,512}$/;
const SOURCE = /^[A-Za-z0-9._-]{1,256}$/;

/** An event source of the user's own: well formed, and neither AWS's nor eddo's. */
export function isOwnSource(s: string): boolean {
  return SOURCE.test(s) && !s.startsWith('aws.') && !s.startsWith('eddo.');
}

/** The policy cache's period in seconds, from `policyCache` or `policyCacheSeconds`. */
export function policyCacheSeconds(props: EddoProps): number {
  return props.policyCache?.toSeconds() ?? props.policyCacheSeconds ?? 60;
}
/**
 * A project's name as synth knows it: an imported project's, or the `projectName` given to one
 * made in the app (whose `projectName` attribute is a reference); none when CloudFormation names it.
 */
function nameAtSynth(project: codebuild.IProject): string | undefined {
  if (!Token.isUnresolved(project.projectName)) {
    return project.projectName;
  }
  const cfn = project.node.defaultChild;
  return cfn instanceof codebuild.CfnProject && cfn.name !== undefined && !Token.isUnresolved(cfn.name) ? cfn.name : undefined;
}

const BRANCH = /^[^\s~^:?*[\\]+$/;

/** The props checked against each other and the policy; each mistake is an Error naming it. */
export function validateProps(props: EddoProps, policy: CheckedPolicy): void {
  const errors: string[] = [];
  const lists = policy.lists;
  const member = (prop: string, project: codebuild.IProject | undefined, allowed: string[], what: string) => {
    const value = project === undefined ? undefined : nameAtSynth(project);
    if (project !== undefined && value === undefined) {
      errors.push(`${prop}: its name is not known at synth (a Project made without projectName?): give it the name ${policy.file} builds with (${allowed.join(', ') || 'none'})`);
    } else if (value !== undefined && !allowed.includes(value)) {
      errors.push(`${prop}: ${value} is no service's ${what} project in ${policy.file} (${allowed.join(', ') || 'none'}): the gate would never hear its builds`);
    }
  };
  member('buildProject', props.buildProject, lists.buildProjects, 'build');
  member('sastProject', props.sastProject, lists.sastProjects, 'sast');
  const range = (prop: string, value: number | undefined, min: number, max: number) => {
    if (value !== undefined && !Token.isUnresolved(value) && (!Number.isInteger(value) || value < min || value > max)) {
      errors.push(`${prop}: ${value} is not a whole number from ${min} to ${max}`);
    }
  };
  range('idempotencyHours', props.idempotencyHours, 24, 720);
  range('previousSecretGraceHours', props.previousSecretGraceHours, 0, 720);
  range('maxEntryBytes', props.maxEntryBytes, 1024, 1048576);
  range('webhookReservedConcurrency', props.webhookReservedConcurrency, 0, 1000);
  const binaries = ['webhook', 'scan-gate', 'alarm-rollback', 'tenant-onboarding'];
  for (const [binary, o] of Object.entries(props.functions ?? {})) {
    if (!binaries.includes(binary)) {
      errors.push(`functions: ${binary} is none of eddo's functions (${binaries.join(', ')})`);
    }
    range(`functions.${binary}.memorySize`, o.memorySize, 128, 10240);
  }
  if (props.policyCache !== undefined && props.policyCacheSeconds !== undefined) {
    errors.push('policyCache: give it or policyCacheSeconds, not both');
  }
  range(props.policyCache ? 'policyCache (seconds)' : 'policyCacheSeconds', policyCacheSeconds(props), 1, 3600);
  for (const [prop, arns] of [
    ['tenantRequestSenderRoleArns', props.tenantRequestSenderRoleArns],
  ] as const) {
    for (const arn of arns ?? []) {
      if (!Token.isUnresolved(arn) && !ROLE_ARN.test(arn)) {
        errors.push(`${prop}: ${arn} is not an IAM role ARN`);
      }
    }
  }
  for (const s of props.tenantRequestSources ?? []) {
    if (!isOwnSource(s)) {
      errors.push(`tenantRequestSources: ${JSON.stringify(s)} is not an event source of yours`);
    }
  }
  if (props.trackedBranches !== undefined) {
    if (props.trackedBranches.length === 0) {
      errors.push('trackedBranches: empty; leave it out to track the policy\'s branches');
    }
    for (const b of props.trackedBranches) {
      if (!BRANCH.test(b)) {
        errors.push(`trackedBranches: ${JSON.stringify(b)} is not a branch name`);
      }
    }
  }
  for (const [prop, value] of [
    ['sbt.controlPlaneEventSource', props.sbt?.controlPlaneEventSource],
    ['sbt.applicationPlaneEventSource', props.sbt?.applicationPlaneEventSource],
  ] as const) {
    if (value !== undefined && !SOURCE.test(value)) {
      errors.push(`${prop}: ${JSON.stringify(value)} is not an event source (1 to 256 of A-Z a-z 0-9 . _ -)`);
    }
  }
  // The most the functions read from S3 (eddo::policy::MAX_OBJECT_BYTES); past SSM's 8 KB the
  // policy is kept there.
  const size = Buffer.byteLength(policy.text);
  if (size > MAX_OBJECT_BYTES) {
    errors.push(`policyFile: ${policy.file} is ${size} bytes; the functions read at most ${MAX_OBJECT_BYTES}`);
  }
  if (props.eventBus && props.eventBusName) {
    errors.push('eventBusName: give eventBus (an existing bus) or eventBusName (a new one), not both');
  }
  if (errors.length > 0) {
    throw new Error(`Eddo: ${errors.join('; ')}`);
  }
}


/** The buses given to an instance of eddo, per app, and by which. */
const CLAIMED = new WeakMap<object, Map<string, string>>();

/** Fails synth when `bus` already carries another instance of eddo in this app. */
export function claimBus(scope: Construct, bus: events.IEventBus): void {
  const app = scope.node.root;
  const claimed = CLAIMED.get(app) ?? new Map<string, string>();
  CLAIMED.set(app, claimed);
  const other = claimed.get(bus.eventBusName);
  if (other !== undefined) {
    throw new Error(`Eddo: eventBus: ${scope.node.path} and ${other} are given the same bus; one eddo per bus ` +
      '(its bus policy keeps each eddo source to one function): give each its own bus, or none');
  }
  claimed.set(bus.eventBusName, scope.node.path);
}
