/**
 * The construct's CDEvents out, checked with aws-cdk-lib/assertions: said only when asked for, and
 * with a sink, delivered by a rule to the app's API destination (the CloudEvent as the body,
 * EventBridge's retries, the dead-letter queue), no function in between.
 */
import { test } from 'node:test';
import { App, SecretValue, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Eddo } from '../lib';
import { EXAMPLE, synth } from './synth';

test('CDEvents: said only when asked; a sink gets them through its API destination, retried, then the DLQ', () => {
  const off = synth({});
  off.resourceCountIs('AWS::Events::ApiDestination', 0);
  off.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_CDEVENTS: 'off' }) },
  });
  synth({ cdevents: { onBus: true } }).hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_CDEVENTS: 'on' }) },
  });

  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Sink');
  const connection = new events.Connection(stack, 'Connection', {
    authorization: events.Authorization.apiKey('Authorization', SecretValue.unsafePlainText('Bearer not-a-real-token')),
  });
  const sink = new events.ApiDestination(stack, 'Sink', { connection, endpoint: 'https://events.example.com/cdevents' });
  new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, cdevents: { sink } });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ EDDO_CDEVENTS: 'on' }) },
  });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { 'source': ['eddo.gate', 'eddo.rollback'], 'detail-type': ['CDEvent'] },
    Targets: [Match.objectLike({
      Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Sink'), 'Arn'] },
      InputPath: '$.detail',
      HttpParameters: { HeaderParameters: { 'Content-Type': 'application/cloudevents+json; charset=utf-8' } },
      DeadLetterConfig: { Arn: Match.anyValue() },
      RetryPolicy: { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 },
      RoleArn: Match.anyValue(),
    })],
  });
  t.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'events:InvokeApiDestination' })]) },
  });
});
