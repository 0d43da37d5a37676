/**
 * The construct's dashboard, checked with aws-cdk-lib/assertions: one, its body valid JSON once
 * Fn::Sub has named the four functions and the dead-letter queue, each of which it graphs.
 * (tests/cdk.rs checks that it is template.yaml's body and that every metric has a widget.)
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { synth } from './synth';

test('one dashboard: the gate metrics and the health of each function and the dead-letter queue', () => {
  const t = synth({});
  t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  const [dashboard] = Object.values(t.findResources('AWS::CloudWatch::Dashboard'));
  const [body, names] = dashboard.Properties.DashboardBody['Fn::Sub'];
  assert.deepEqual(Object.keys(names).sort(), [
    'AlarmRollbackFunction', 'DeadLetterQueueName', 'ScanGateFunction', 'TenantOnboardingFunction', 'WebhookFunction',
  ]);
  // Every placeholder is one of those, or the Region.
  const placeholders = new Set([...body.matchAll(/\$\{([^}]+)\}/g)].map((m: RegExpMatchArray) => m[1]));
  for (const p of placeholders) {
    assert.ok(p === 'AWS::Region' || p in names, `unknown placeholder ${p}`);
  }
  const widgets = JSON.parse(body).widgets;
  assert.ok(widgets.length >= 8);
  for (const name of Object.keys(names)) {
    assert.ok(body.includes(`\${${name}}`), `${name} is graphed`);
  }
});
