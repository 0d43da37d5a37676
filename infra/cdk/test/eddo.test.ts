/**
 * The Eddo construct's props, checked with aws-cdk-lib/assertions: a policy with a mistake fails
 * synth with eddo's own message; the projects the policy names appear in IAM and in the rules'
 * filters, and nothing else does; the props reach the functions, the bus policy and the alarms.
 * Functions are not bundled (no cargo-lambda build); the policy is checked by the workspace's
 * eddo binary.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { App, Aspects, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Eddo, EddoProps, SbtGeneration } from '../lib';
import { EddoPolicy } from '../lib';
import { checkerArgs } from '../lib/checker';

const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'policy', 'example.yaml');

/** Props as the tests write them: the push rule's projects by name (imported into the stack). */
type TestProps = Omit<Partial<EddoProps>, 'buildProject' | 'sastProject'> & { buildProject?: string; sastProject?: string };

function stackWith({ buildProject, sastProject, ...props }: TestProps): Stack {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Test');
  const named = (id: string, name?: string) => (name === undefined ? undefined : codebuild.Project.fromProjectName(stack, id, name));
  new Eddo(stack, 'Eddo', {
    policyFile: EXAMPLE,
    policyParameterTier: ssm.ParameterTier.ADVANCED,
    buildProject: named('Build', buildProject),
    sastProject: named('Sast', sastProject),
    ...props,
  });
  return stack;
}

function synth(props: TestProps = {}): Template {
  return Template.fromStack(stackWith(props));
}

function policyFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'eddo-cdk-'));
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

/** Every string in a template value, its Fn::Join parts joined. */
function flatten(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(flatten);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o['Fn::Join'])) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return [parts.map((p) => (typeof p === 'string' ? p : '${}')).join(sep)];
    }
    return Object.values(o).flatMap(flatten);
  }
  return [];
}

/** The CodeBuild projects a template names: in grants (project/NAME) and in rule filters. */
function projects(t: Template): { granted: Set<string>; heard: Set<string>; pushed: Set<string> } {
  const granted = new Set<string>();
  for (const p of Object.values(t.findResources('AWS::IAM::Policy'))) {
    for (const s of flatten(p.Properties.PolicyDocument)) {
      const m = /:project\/(.+)$/.exec(s);
      if (m) granted.add(m[1]);
    }
  }
  const heard = new Set<string>();
  const pushed = new Set<string>();
  for (const r of Object.values(t.findResources('AWS::Events::Rule'))) {
    for (const name of r.Properties.EventPattern?.detail?.['project-name'] ?? []) heard.add(name);
    for (const target of r.Properties.Targets ?? []) {
      for (const s of flatten(target.Arn)) {
        const m = /:project\/(.+)$/.exec(s);
        if (m) pushed.add(m[1]);
      }
    }
  }
  return { granted, heard, pushed };
}

test('a policy with a mistake fails synth with the message eddo gives for it', () => {
  const bad = policyFile('version: 1\nservices:\n  payments:\n    repositories: [acme/payments]\n    branches: [main]\n    projects: {deploy: pay-deploy}\n    gate: {require: [build], deadline_minutes: 30, sast_checks: [CodeQL]}\n');
  const [program, ...args] = EddoPolicy.command();
  const cli = spawnSync(program, [...args, 'policy', 'params', bad], { encoding: 'utf-8' });
  assert.notEqual(cli.status, 0, 'eddo refuses the policy');
  const message = cli.stderr.trim();
  assert.match(message, /sast_checks/);
  assert.throws(() => stackWith({ policyFile: bad }), (e: Error) => e.message === message);
});

test('a missing policy file fails synth naming it', () => {
  assert.throws(() => stackWith({ policyFile: '/nonexistent/eddo-policy.yaml' }), /\/nonexistent\/eddo-policy.yaml/);
});

test('the functions reach projects by tag, and only the push rule names any', () => {
  const { granted, heard, pushed } = projects(synth({ buildProject: 'eddo-build', sastProject: 'eddo-sast' }));
  // project/* (with the eddo:role conditions), and the push rule's two projects.
  assert.deepEqual([...granted].sort(), ['*', 'eddo-build', 'eddo-sast']);
  assert.deepEqual([...heard], []);
  assert.deepEqual([...pushed].sort(), ['eddo-build', 'eddo-sast']);
});

test('another policy: its projects, repositories and branches, none of the example\'s', () => {
  const file = policyFile([
    'version: 1',
    'services:',
    '  payments:',
    '    repositories: [acme/payments]',
    '    branches: [release]',
    '    projects: {build: pay-build, deploy: pay-deploy}',
    '    gate: {require: [build], deadline_minutes: 30}',
    '',
  ].join('\n'));
  const t = synth({ policyFile: file, buildProject: 'pay-build' });
  const { granted, heard, pushed } = projects(t);
  assert.deepEqual([...granted].sort(), ['*', 'pay-build']);
  assert.deepEqual([...heard], []);
  assert.deepEqual([...pushed], ['pay-build']);
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { 'detail-type': ['Git Push'], detail: { branch: ['release'], repository: { full_name: ['acme/payments'] } } },
  });
  // The stack deploys this policy, as written.
  t.hasResourceProperties('AWS::SSM::Parameter', { Name: Match.stringLikeRegexp('^/Test-Eddo-[0-9A-F]{8}/policy$'), Type: 'String', Value: readFileSync(file, 'utf-8') });
});

test('a build project the policy does not name fails synth', () => {
  assert.throws(() => stackWith({ buildProject: 'someone-elses-build' }),
    /buildProject: someone-elses-build is no service's build project in .*example.yaml \(eddo-build\)/);
});

test('a project of the app: its own name goes in the push rule; one named only at deploy fails synth', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Own');
  const source = codebuild.Source.gitHub({ owner: 'eddo-dev', repo: 'eddo' });
  const build = new codebuild.Project(stack, 'Build', { projectName: 'eddo-build', source });
  new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, buildProject: build });
  Template.fromStack(stack).hasResourceProperties('AWS::Events::Rule', {
    EventPattern: Match.objectLike({ 'detail-type': ['Git Push'] }),
    Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [stack.getLogicalId(build.node.defaultChild as codebuild.CfnProject), 'Arn'] } })],
  });
  const other = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Unnamed');
  const unnamed = new codebuild.Project(other, 'Build', { source });
  assert.throws(() => new Eddo(other, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, buildProject: unnamed }),
    /buildProject: its name is not known at synth .*\(eddo-build\)/);
});

test('out-of-range and malformed props fail synth, each named', () => {
  assert.throws(() => stackWith({ idempotencyHours: 12 }), /idempotencyHours: 12 is not a whole number from 24 to 720/);
  assert.throws(() => stackWith({ tenantRequestSenderRoleArns: ['my-role'] }), /tenantRequestSenderRoleArns: my-role is not an IAM role ARN/);
  assert.throws(() => stackWith({ trackedBranches: [] }), /trackedBranches: empty/);
});

test('a policy past SSM\'s 8 KB is kept in S3: read from its object, granted on that object alone', () => {
  const big = policyFile(readFileSync(EXAMPLE, 'utf-8') + `# ${'x'.repeat(9000)}\n`);
  const stack = stackWith({ policyFile: big });
  const t = Template.fromStack(stack);
  t.resourceCountIs('AWS::SSM::Parameter', 0);
  const functions = Object.values(t.findResources('AWS::Lambda::Function'))
    .map((f) => (f as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables);
  const readers = functions.filter((v) => v.EDDO_POLICY_OBJECT !== undefined);
  assert.equal(readers.length, 3, 'the gate, alarm-rollback and tenant-onboarding');
  for (const v of readers) {
    assert.equal(v.EDDO_POLICY_PARAMETER, undefined, 'one store, not two');
    const [object] = flatten(v.EDDO_POLICY_OBJECT);
    assert.match(object, /^s3:\/\/\$\{\}\/[0-9a-f]{64}\.yaml$/, object);
  }
  // s3:GetObject on that object, nothing more of the bucket.
  const statements = Object.values(t.findResources('AWS::IAM::Policy'))
    .flatMap((p) => (p as { Properties: { PolicyDocument: { Statement: { Sid?: string; Action: unknown; Resource: unknown }[] } } })
      .Properties.PolicyDocument.Statement)
    .filter((s) => s.Sid === 'ReadThePolicy');
  assert.equal(statements.length, 3);
  for (const s of statements) {
    assert.equal(s.Action, 's3:GetObject');
    assert.match(flatten(s.Resource)[0], /^arn:\$\{\}:s3:::\$\{\}\/[0-9a-f]{64}\.yaml$/);
  }
  // A small policy stays in SSM unless asked.
  synth().resourceCountIs('AWS::SSM::Parameter', 1);
  synth({ policyInS3: true }).resourceCountIs('AWS::SSM::Parameter', 0);
});

test('the functions get the policy parameter, and start and read projects by their eddo:role tag', () => {
  const t = synth({ policyParameterName: '/platform/eddo-policy' });
  const [parameter] = Object.keys(t.findResources('AWS::SSM::Parameter'));
  t.resourcePropertiesCountIs('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_POLICY_PARAMETER: { Ref: parameter } }) },
  }, 3);
  t.hasResourceProperties('AWS::Lambda::Function', {
    Architectures: ['arm64'],
    Runtime: 'provided.al2023',
    Environment: { Variables: Match.objectLike({
      EDDO_POLICY_PARAMETER: { Ref: parameter },
    }) },
  });
  // One statement per role, however many projects the policy names.
  const byTag = (sid: string, actions: string[] | string, roles: string[]) =>
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Sid: sid,
        Action: actions,
        Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':project/*'])] }),
        Condition: { StringEquals: { 'aws:ResourceTag/eddo:role': roles } },
      })]) },
    });
  const start = ['codebuild:StartBuild', 'codebuild:ListBuildsForProject', 'codebuild:BatchGetBuilds'];
  byTag('StartDeployProjects', start, ['deploy']);
  byTag('ConfirmBuilds', 'codebuild:BatchGetBuilds', ['build', 'sast', 'rollback']);
  byTag('StartRollbackProjects', start, ['rollback']);
  byTag('StartTenantProjects', start, ['tenant']);
  // The builds rules name no project: each function keeps its policy's in code.
  for (const [, rule] of Object.entries(t.findResources('AWS::Events::Rule'))) {
    const pattern = JSON.stringify((rule as { Properties: { EventPattern?: unknown } }).Properties.EventPattern ?? null);
    assert.ok(!pattern.includes('project-name'), pattern);
  }
  t.hasResourceProperties('AWS::SSM::Parameter', { Name: '/platform/eddo-policy', Tier: 'Advanced' });
});

test('the policy is read through its cache, and each function records only its own refused versions', () => {
  const t = synth({ policyCacheSeconds: 30 });
  t.resourcePropertiesCountIs('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_POLICY_TTL_SECS: '30' }) },
  }, 3);
  for (const binary of ['scan-gate', 'alarm-rollback', 'tenant-onboarding']) {
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Sid: 'PolicyRejections',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`idem#policy-rejected#${binary}#*`] } },
      })]) },
    });
  }
  assert.throws(() => stackWith({ policyCacheSeconds: 0 }), /policyCacheSeconds: 0 is not a whole number from 1 to 3600/);
});

test('signal senders: any source but eddo\'s, AWS\'s and the tenant contracts\' only from a role tagged with it', () => {
  const t = synth({ tenantRequestSources: ['com.acme.control-plane'], sbt: {} });
  const notSignals = ['com.acme.control-plane', 'sbt.control.plane', 'sbt.application.plane'];
  t.hasResourceProperties('AWS::Events::EventBusPolicy', {
    StatementId: 'EachSignalSourceOnlyFromItsTaggedRoles',
    Statement: { Effect: 'Deny', Condition: {
      StringNotLike: { 'events:source': ['eddo.*', 'aws.*'] },
      StringNotEquals: { 'events:source': ['${aws:PrincipalTag/eddo:signal-source}', ...notSignals] },
    } },
  });
  t.hasResourceProperties('AWS::Events::EventBusPolicy', {
    StatementId: 'SignalSourcesOnlyFromTaggedRoles',
    Statement: { Effect: 'Deny', Condition: {
      StringNotLike: { 'events:source': ['eddo.*', 'aws.*'] },
      StringNotEquals: { 'events:source': notSignals },
      Null: { 'aws:PrincipalTag/eddo:signal-source': 'true' },
    } },
  });
  // No statement lists the policy's sources: the bus policy does not grow with it.
  for (const [, p] of Object.entries(t.findResources('AWS::Events::EventBusPolicy'))) {
    assert.ok(!JSON.stringify(p).includes('com.example.semgrep'), JSON.stringify(p));
  }
});

test('tenant requests: only from the listed sources, put only by the control plane\'s roles', () => {
  const role = 'arn:aws:iam::123456789012:role/control-plane';
  const t = synth({
    tenantRequestSources: ['com.acme.control-plane'],
    tenantRequestSenderRoleArns: [role],
    sbt: {},
  });
  t.hasResourceProperties('AWS::Events::EventBusPolicy', {
    StatementId: 'OnlyTheControlPlanePutsTenantRequests',
    Statement: {
      Effect: 'Deny',
      Condition: {
        StringEquals: { 'events:source': ['com.acme.control-plane', 'sbt.control.plane'] },
        ArnNotEquals: { 'aws:PrincipalArn': [role] },
      },
    },
  });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: {
      source: ['com.acme.control-plane'],
      'detail-type': ['Tenant Onboarding Requested', 'Tenant Offboarding Requested'],
    },
  });
  // No source listed: eddo's tenant contract is off, and no rule takes its requests.
  const off = synth({});
  const patterns = Object.values(off.findResources('AWS::Events::Rule'))
    .map((r) => JSON.stringify((r as { Properties: { EventPattern?: unknown } }).Properties.EventPattern ?? null));
  assert.ok(patterns.every((p) => !p.includes('Tenant Onboarding Requested')), patterns.join('\n'));
  assert.throws(() => stackWith({ tenantRequestSources: ['eddo.tenants'] }), /tenantRequestSources: "eddo.tenants" is not an event source of yours/);
  // A role of the app is named by its ARN beside the ARNs given.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Roles');
  const cp = new iam.Role(stack, 'ControlPlane', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  new Eddo(stack, 'Eddo', {
    policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED,
    tenantRequestSources: ['com.acme.control-plane'], tenantRequestSenderRoleArns: [role], tenantRequestSenders: [cp],
  });
  Template.fromStack(stack).hasResourceProperties('AWS::Events::EventBusPolicy', {
    StatementId: 'OnlyTheControlPlanePutsTenantRequests',
    Statement: { Condition: { ArnNotEquals: { 'aws:PrincipalArn': [role, { 'Fn::GetAtt': [Match.stringLikeRegexp('^ControlPlane'), 'Arn'] }] } } },
  });
});

test('a customer-managed key: decrypt through Secrets Manager and SSM only', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Keyed');
  const key = kms.Key.fromKeyArn(stack, 'Key', 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab');
  new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, kmsKey: key });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::SecretsManager::Secret', { KmsKeyId: key.keyArn });
  t.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
      Sid: 'DecryptTheWebhookSecret',
      Action: 'kms:Decrypt',
      Condition: { StringEquals: { 'kms:ViaService': Match.anyValue() } },
    })]) },
  });
});

test('sbt-aws: a rule for its control plane only when asked for, in its generation\'s names', () => {
  const current = { 'detail-type': ['sbt_aws_onboardingRequest', 'sbt_aws_offboardingRequest'] };
  const legacy = { 'detail-type': ['onboardingRequest', 'offboardingRequest'] };
  const off = synth({});
  off.resourcePropertiesCountIs('AWS::Events::Rule', { EventPattern: current }, 0);
  off.resourcePropertiesCountIs('AWS::Events::Rule', { EventPattern: legacy }, 0);
  // Off: the function may put eddo.tenants only.
  off.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
      Sid: 'PublishToTheEddoBus', Condition: { StringEquals: { 'events:source': ['eddo.tenants'] } },
    })]) },
  });

  // Current by default: sbt-aws's default sources, prefixed names.
  const t = synth({ sbt: {} });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { source: ['sbt.control.plane'], ...current },
    Targets: [Match.objectLike({ RetryPolicy: { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 } })],
  });
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({
      EDDO_SBT_CONTROL_PLANE_SOURCE: 'sbt.control.plane',
      EDDO_SBT_GENERATION: 'current',
      EDDO_SBT_APPLICATION_PLANE_SOURCE: 'sbt.application.plane',
    }) },
  });
  t.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
      Sid: 'PublishToTheEddoBus', Condition: { StringEquals: { 'events:source': ['eddo.tenants', 'sbt.application.plane'] } },
    })]) },
  });

  // Legacy, with an overridden answer source.
  const l = synth({ sbt: { generation: SbtGeneration.LEGACY, applicationPlaneEventSource: 'acme.app.plane' } });
  l.hasResourceProperties('AWS::Events::Rule', { EventPattern: { source: ['controlPlaneEventSource'], ...legacy } });
  l.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({
      EDDO_SBT_GENERATION: 'legacy',
      EDDO_SBT_APPLICATION_PLANE_SOURCE: 'acme.app.plane',
    }) },
  });
});

test('alarms: five, each with the given actions; logs kept as long as asked', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Alarmed');
  const topic = new sns.Topic(stack, 'Pager');
  new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, alarmActions: [new cloudwatchActions.SnsAction(topic)], logRetention: 7 });
  const t = Template.fromStack(stack);
  t.resourceCountIs('AWS::CloudWatch::Alarm', 5);
  t.resourcePropertiesCountIs('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: Match.stringLikeRegexp('Pager') }] }, 5);
  t.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 7 }, 4);
});

test('an existing bus: eddo creates none, and wires, archives and guards the given one', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Shared');
  const bus = events.EventBus.fromEventBusName(stack, 'Bus', 'platform-bus');
  new Eddo(stack, 'Eddo', {
    policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, eventBus: bus,
    buildProject: codebuild.Project.fromProjectName(stack, 'Build', 'eddo-build'),
  });
  const t = Template.fromStack(stack);
  t.resourceCountIs('AWS::Events::EventBus', 0);
  // Each eddo source's (4), any other eddo.*, and the signal sources' tags (2).
  t.resourcePropertiesCountIs('AWS::Events::EventBusPolicy', { EventBusName: 'platform-bus' }, 7);
  t.hasResourceProperties('AWS::Events::Rule', { EventBusName: 'platform-bus', EventPattern: { 'detail-type': ['Git Push'] } });
  t.hasResourceProperties('AWS::Events::Archive', { SourceArn: Match.anyValue() });
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_EVENT_BUS_NAME: 'platform-bus' }) },
  });
  assert.throws(() => new Eddo(stack, 'Both', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, eventBus: bus, eventBusName: 'x' }),
    /give eventBus \(an existing bus\) or eventBusName \(a new one\), not both/);
});

test('two instances in one account (staging and prod): no name and no statement id in common', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const names = (t: Template): string[] => [
    ...Object.values(t.findResources('AWS::Events::EventBus')).map((r) => String(r.Properties.Name)),
    ...Object.values(t.findResources('AWS::SSM::Parameter')).map((r) => String(r.Properties.Name)),
  ];
  const stacks = ['Staging', 'Prod'].map((name) => {
    const stack = new Stack(app, name);
    new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED });
    return stack;
  });
  // A bus given: statement ids of the instance's own, beside the bus's other statements. One eddo
  // per bus (each eddo source kept to one function).
  const shared = new Stack(app, 'Shared');
  const bus = events.EventBus.fromEventBusName(shared, 'Bus', 'platform-bus');
  new Eddo(shared, 'Staging', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, eventBus: bus });
  assert.throws(() => new Eddo(shared, 'Prod', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, eventBus: bus }),
    /Shared\/Prod and Shared\/Staging are given the same bus; one eddo per bus/);
  const [staging, prod] = stacks.map((s) => Template.fromStack(s));
  assert.deepEqual(names(staging).length, 2);
  assert.deepEqual(names(staging).filter((n) => names(prod).includes(n)), []);
  // Functions are told their own bus and their own parameter.
  for (const [t, stage] of [[staging, 'Staging'], [prod, 'Prod']] as const) {
    t.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ EDDO_EVENT_BUS_NAME: { Ref: Match.stringLikeRegexp('^EddoEventBus') } }) },
    });
    assert.ok(names(t).every((n) => n.includes(`${stage}-Eddo-`)), names(t).join(', '));
  }
  const sids = Object.values(Template.fromStack(shared).findResources('AWS::Events::EventBusPolicy'))
    .map((r) => String(r.Properties.StatementId));
  assert.equal(sids.length, 7);
  assert.ok(sids.every((s) => /^[A-Za-z]+-[0-9a-f]{8}$/.test(s) && s.length <= 64), sids.join(', '));
});

test('a policy of many services: the push rule takes its repositories by owner, the grants do not grow', () => {
  // Twelve services whose repositories' names, joined, pass the 1,024 characters the push rule's
  // pattern keeps for them (a policy of a thousand needs the policy store of issue 35).
  const lines = ['version: 1', 'services:'];
  for (let n = 0; n < 12; n++) {
    const name = `svc-${String(n).padStart(4, '0')}`;
    lines.push(
      `  ${name}:`,
      `    repositories: [acme/${name}-${'a-very-long-repository-name-'.repeat(3)}x]`,
      '    branches: [main]',
      `    projects: {build: ${name}-build, deploy: ${name}-deploy}`,
      '    gate: {require: [build], deadline_minutes: 30}',
    );
  }
  const t = synth({ policyFile: policyFile(lines.join('\n') + '\n'), buildProject: 'svc-0007-build' });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { 'detail-type': ['Git Push'], detail: Match.objectLike({ repository: { owner: ['acme'] } }) },
  });
  const small = synth({ buildProject: 'eddo-build' });
  for (const type of ['AWS::IAM::Policy', 'AWS::Events::EventBusPolicy', 'AWS::Events::Rule']) {
    assert.equal(Object.keys(t.findResources(type)).length, Object.keys(small.findResources(type)).length, type);
  }
});

test('cdk-nag: the AwsSolutions and Serverless packs pass, each suppression on its resource with its reason', () => {
  for (const [pushed, props] of [
    [true, { tenantRequestSources: ['com.example.cp'], sbt: {} }],
    [false, { policyInS3: true, webhookReservedConcurrency: 0 }],
  ] as Array<[boolean, Partial<EddoProps>]>) {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Nag');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const projects = pushed ? {
      buildProject: codebuild.Project.fromProjectName(stack, 'Build', 'eddo-build'),
      sastProject: codebuild.Project.fromProjectName(stack, 'Sast', 'eddo-sast'),
    } : {};
    new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, kmsKey: key, ...projects, ...props });
    Aspects.of(app).add(new AwsSolutionsChecks());
    Aspects.of(app).add(new ServerlessChecks());
    app.synth();
    const findings = [
      ...Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('^(AwsSolutions|Serverless)-')),
      ...Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('^(AwsSolutions|Serverless)-')),
    ].map((m) => `${m.id}: ${String(m.entry.data).split(':')[0]}`);
    assert.deepEqual(findings, [], JSON.stringify(props));
    // Every suppression names its rule, says why in a sentence, and sits on one resource.
    const template = Template.fromStack(stack).toJSON() as { Metadata?: unknown; Resources: Record<string, { Metadata?: Record<string, unknown> }> };
    assert.equal(JSON.stringify(template.Metadata ?? {}).includes('cdk_nag'), false);
    const suppressions = Object.values(template.Resources)
      .flatMap((r) => ((r.Metadata?.cdk_nag as { rules_to_suppress?: Array<{ id: string; reason: string }> })?.rules_to_suppress ?? []));
    assert.ok(suppressions.length >= 10, `${suppressions.length} suppressions`);
    for (const s of suppressions) {
      assert.match(s.id, /^(AwsSolutions|Serverless)-[A-Za-z0-9]+$/);
      assert.ok(s.reason.length >= 60 && s.reason.endsWith('.'), `${s.id}: ${s.reason}`);
    }
  }
});

test('the parameter\'s tier is a prop, never the policy\'s size: past it, synth says what to set', () => {
  const small = policyFile(['version: 1', 'services:', '  payments:', '    repositories: [acme/payments]',
    '    branches: [main]', '    projects: {build: pay-build, deploy: pay-deploy}', '    gate: {require: [build], deadline_minutes: 30}', ''].join('\n'));
  synth({ policyFile: small, policyParameterTier: undefined }).hasResourceProperties('AWS::SSM::Parameter', { Tier: 'Standard' });
  const bytes = statSync(EXAMPLE).size;
  assert.throws(() => synth({ policyParameterTier: undefined }), new RegExp(
    `example\\.yaml is ${bytes} bytes, past a Standard parameter's 4096: set policyParameterTier: ParameterTier\\.ADVANCED`));
  synth({}).hasResourceProperties('AWS::SSM::Parameter', { Tier: 'Advanced' });
  // A small policy in an Advanced parameter stays Advanced: SSM cannot take it back.
  synth({ policyFile: small }).hasResourceProperties('AWS::SSM::Parameter', { Tier: 'Advanced' });
});

test('escape hatches: per-function overrides, the table\'s removal policy, the cache as a Duration, the rules and archive', () => {
  const stack = stackWith({
    functions: { 'scan-gate': { memorySize: 256, timeout: Duration.seconds(60), tracing: lambda.Tracing.PASS_THROUGH } },
    removalPolicy: RemovalPolicy.DESTROY,
    policyCache: Duration.minutes(5),
  });
  const eddo = stack.node.findChild('Eddo') as Eddo;
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::Lambda::Function', {
    MemorySize: 256, Timeout: 60, TracingConfig: { Mode: 'PassThrough' },
    Environment: { Variables: Match.objectLike({ EDDO_POLICY_TTL_SECS: '300' }) },
  });
  // The others keep theirs.
  t.resourcePropertiesCountIs('AWS::Lambda::Function', { MemorySize: 128, TracingConfig: { Mode: 'Active' } }, 3);
  t.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
  assert.equal(eddo.rules.length, Object.keys(t.findResources('AWS::Events::Rule')).length);
  assert.ok(eddo.archive.sourceArn);
  assert.throws(() => synth({ functions: { gate: { memorySize: 256 } } }), /functions: gate is none of eddo's functions/);
  assert.throws(() => synth({ policyCache: Duration.hours(2) }), /policyCache \(seconds\): 7200 is not a whole number from 1 to 3600/);
});

test('grantPutSignal tags the role with its source and lets it put that source alone; onDecision hears every decision', () => {
  const stack = stackWith({});
  const eddo = stack.node.findChild('Eddo') as Eddo;
  const scanner = new iam.Role(stack, 'Scanner', { assumedBy: new iam.ServicePrincipal('codebuild.amazonaws.com') });
  eddo.grantPutSignal(scanner, 'com.acme.scanner');
  const topic = new sns.Topic(stack, 'Decisions');
  eddo.onDecision('ToChat', { target: new eventsTargets.SnsTopic(topic), eventPattern: { detailType: ['Deployment Blocked'] } });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::IAM::Role', {
    Tags: Match.arrayWith([{ Key: 'eddo:signal-source', Value: 'com.acme.scanner' }]),
  });
  t.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: Match.stringLikeRegexp('^Scanner') }],
    PolicyDocument: { Statement: [Match.objectLike({
      Action: 'events:PutEvents', Condition: { StringEquals: { 'events:source': 'com.acme.scanner' } },
    })] },
  });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { 'detail-type': ['Deployment Blocked'], source: ['eddo.gate', 'eddo.rollback', 'eddo.tenants'] },
    Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('^Decisions') } })],
  });
  assert.throws(() => eddo.grantPutSignal(scanner, 'eddo.gate'), /is not an event source of yours/);
});

test('the packaged checker\'s arguments: files made absolute, the command words kept whatever the folder holds', () => {
  // An app keeps its policy in policy/, as the README shows: `policy` is still the command word.
  const app = mkdtempSync(path.join(tmpdir(), 'eddo-app-'));
  mkdirSync(path.join(app, 'policy'));
  writeFileSync(path.join(app, 'policy', 'eddo.yaml'), 'version: 1\n');
  const cwd = process.cwd();
  process.chdir(app);
  try {
    assert.deepEqual(checkerArgs(['policy', 'params', '--json', 'policy/eddo.yaml']),
      ['policy', 'params', '--json', path.join(realpathSync(app), 'policy', 'eddo.yaml')]);
    assert.deepEqual(checkerArgs(['policy', 'diff', 'policy/eddo.yaml', 'missing.yaml']),
      ['policy', 'diff', path.join(realpathSync(app), 'policy', 'eddo.yaml'), 'missing.yaml']);
  } finally {
    process.chdir(cwd);
  }
});
