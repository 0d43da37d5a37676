/**
 * The construct's GitHub App mode and GitLab statuses, checked with aws-cdk-lib/assertions: off
 * by default (no secret, nothing in the gate's environment); on, a secret for the App's key or
 * the token that only the gate may read, and the gate pointed at it and at the API.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { synth } from './synth';

test('GitHub App: off by default; on, a secret for its key that the gate alone reads', () => {
  const off = synth({});
  off.resourceCountIs('AWS::SecretsManager::Secret', 1);
  const gateEnv = (t: Template) =>
    Object.values(t.findResources('AWS::Lambda::Function'))
      .map((f) => f.Properties.Environment.Variables)
      .filter((v) => v.EDDO_POLICY_PARAMETER !== undefined && 'EDDO_GITHUB_API' in v);
  assert.equal(gateEnv(off).length, 0);

  const on = synth({ githubApp: { apiUrl: 'https://ghe.example.com/api/v3' } });
  on.resourceCountIs('AWS::SecretsManager::Secret', 2);
  on.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        EDDO_GITHUB_APP_SECRET: { Ref: Match.stringLikeRegexp('GitHubAppSecret') },
        EDDO_GITHUB_API: 'https://ghe.example.com/api/v3',
      }),
    },
  });
  const readers = Object.values(on.findResources('AWS::IAM::Policy')).filter((p) =>
    JSON.stringify(p.Properties.PolicyDocument).includes('ReadTheGitHubAppKey'));
  assert.equal(readers.length, 1, 'one role reads the App key');
  assert.match(JSON.stringify(readers[0].Properties.Roles), /ScanGate/);
});

test('GitLab statuses: on, a secret for the token that the gate alone reads', () => {
  const on = synth({ gitlabStatuses: {} });
  on.resourceCountIs('AWS::SecretsManager::Secret', 2);
  on.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        EDDO_GITLAB_TOKEN_SECRET: { Ref: Match.stringLikeRegexp('GitLabTokenSecret') },
        EDDO_GITLAB_API: 'https://gitlab.com/api/v4',
      }),
    },
  });
  const readers = Object.values(on.findResources('AWS::IAM::Policy')).filter((p) =>
    JSON.stringify(p.Properties.PolicyDocument).includes('ReadTheGitLabToken'));
  assert.equal(readers.length, 1, 'one role reads the token');
  assert.match(JSON.stringify(readers[0].Properties.Roles), /ScanGate/);
  const both = synth({ githubApp: {}, gitlabStatuses: {} });
  both.resourceCountIs('AWS::SecretsManager::Secret', 3);
});
