#!/usr/bin/env node
/**
 * The example app: eddo in one stack, with infra/policy/example.yaml and the settings the local
 * stack runs with (every optional part switched on). Settings come from CDK context, so
 * `cdk deploy -c eddo:policyFile=...` deploys your own policy without editing this file:
 *
 * - eddo:stackName (default Eddo)
 * - eddo:policyFile (default infra/policy/example.yaml)
 * - eddo:buildProject, eddo:sastProject (defaults eddo-build, eddo-sast; "" for none)
 * - eddo:tenantRequestSources (default com.example.control-plane; "" for none),
 *   eddo:tenantRequestSenderRoleArns (comma-separated role ARNs)
 * - eddo:sbtControlPlaneEventSource (default sbt.control.plane; "" for eddo's contract only)
 * - eddo:sbtGeneration (default current; legacy for an sbt-aws app that has not upgraded)
 * - eddo:eventBusName, eddo:policyParameterName (defaults derived from the stack's name),
 *   eddo:policyParameterTier (Standard or Advanced; default Advanced)
 * - eddo:functionsFrom (prebuilt or source; default the construct's: prebuilt when the package
 *   carries the functions)
 */
import * as path from 'node:path';
import { App, CfnOutput, Stack } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as ssm from 'aws-cdk-lib/aws-ssm';
// By the package's name, as your app imports it (here, the package itself: its exports map).
import { Eddo, FunctionsFrom, SbtGeneration } from '@eddo-dev/cdk';

const app = new App();
const setting = (name: string, fallback: string): string => {
  const v: unknown = app.node.tryGetContext(`eddo:${name}`);
  return v === undefined ? fallback : String(v);
};
const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');
const optional = (v: string): string | undefined => (v === '' ? undefined : v);

const stack = new Stack(app, setting('stackName', 'Eddo'), {
  description: 'eddo: event-driven delivery operations on Amazon EventBridge (CDK).',
});
/** The project of that name (made elsewhere), or none for "". */
const project = (id: string, name: string): codebuild.IProject | undefined =>
  name === '' ? undefined : codebuild.Project.fromProjectName(stack, `${id}Project`, name);
const sbtSource = setting('sbtControlPlaneEventSource', 'sbt.control.plane');
const sbtGeneration = setting('sbtGeneration', 'current');
if (sbtGeneration !== 'current' && sbtGeneration !== 'legacy') {
  throw new Error(`eddo:sbtGeneration: ${sbtGeneration} is not current or legacy`);
}
const functionsFrom = setting('functionsFrom', '');
if (!['', 'prebuilt', 'source'].includes(functionsFrom)) {
  throw new Error(`eddo:functionsFrom: ${functionsFrom} is not prebuilt or source`);
}
const eddo = new Eddo(stack, 'Eddo', {
  functionsFrom: functionsFrom === '' ? undefined : functionsFrom === 'prebuilt' ? FunctionsFrom.PREBUILT : FunctionsFrom.SOURCE,
  policyFile: path.resolve(setting('policyFile', path.join(__dirname, '..', '..', '..', 'policy', 'example.yaml'))),
  eventBusName: optional(setting('eventBusName', '')),
  policyParameterName: optional(setting('policyParameterName', '')),
  // The example policy is 6 KB: past a Standard parameter.
  policyParameterTier: setting('policyParameterTier', 'Advanced') === 'Standard' ? ssm.ParameterTier.STANDARD : ssm.ParameterTier.ADVANCED,
  buildProject: project('Build', setting('buildProject', 'eddo-build')),
  sastProject: project('Sast', setting('sastProject', 'eddo-sast')),
  tenantRequestSources: list(setting('tenantRequestSources', 'com.example.control-plane')),
  tenantRequestSenderRoleArns: list(setting('tenantRequestSenderRoleArns', '')),
  sbt: sbtSource === '' ? undefined : {
    controlPlaneEventSource: sbtSource,
    generation: sbtGeneration === 'legacy' ? SbtGeneration.LEGACY : SbtGeneration.CURRENT,
  },
});

const outputs: Record<string, [string, string | undefined]> = {
  WebhookBaseUrl: [eddo.webhookUrl.url, 'The webhook function URL; append github, gitlab, standard or signals/<sender>.'],
  GitHubWebhookUrl: [`${eddo.webhookUrl.url}github`, 'Payload URL for a GitHub webhook (content type application/json).'],
  GitLabWebhookUrl: [`${eddo.webhookUrl.url}gitlab`, 'URL for a GitLab webhook.'],
  StandardWebhooksUrl: [`${eddo.webhookUrl.url}standard`, 'URL for any Standard Webhooks sender.'],
  WebhookSecretArn: [eddo.webhookSecret.secretArn, 'Put the provider secrets here (JSON keys github, gitlab, gitlab_signing, standard_webhooks, senders).'],
  EventBusArn: [eddo.eventBus.eventBusArn, undefined],
  EventBusName: [eddo.eventBus.eventBusName, undefined],
  StateTableName: [eddo.table.tableName, undefined],
  DeadLetterQueueUrl: [eddo.deadLetterQueue.queueUrl, undefined],
  AlarmRollbackFunctionArn: [eddo.alarmRollbackFunction.functionArn, 'Add it as an alarm\'s Lambda action to invoke alarm-rollback directly.'],
};
if (eddo.policyParameter) {
  outputs.PolicyParameterName = [eddo.policyParameter.parameterName, 'The SSM parameter the functions read the policy from (the stack owns it).'];
}
for (const [name, [value, description]] of Object.entries(outputs)) {
  new CfnOutput(stack, name, { value, description });
}
