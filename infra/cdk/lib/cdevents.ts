/**
 * eddo's decisions as CDEvents, to the sink the app names: a rule on the eddo bus whose target is
 * the app's API destination, no function in between.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SOURCES } from './wiring';

/** What the CDEvents rule is made of. */
export interface CDEventsRuleSpec {
  readonly eventBus: events.IEventBus;
  readonly deadLetterQueue: sqs.IQueue;
  /** The app's API destination, its connection carrying the sink's authorization. */
  readonly sink: events.IApiDestination;
}

/**
 * The rule in `scope` that delivers eddo's CDEvents to the sink: the body is the CloudEvent
 * itself (`$.detail`), in structured content mode; EventBridge retries for a day, then the
 * dead-letter queue. The target's role may invoke that destination alone.
 */
export function cdeventsRule(scope: Construct, spec: CDEventsRuleSpec): events.Rule {
  return new events.Rule(scope, 'CDEventsRule', {
    description: 'eddo\'s decisions as CDEvents (structured-mode CloudEvents) to the sink.',
    eventBus: spec.eventBus,
    eventPattern: { source: [SOURCES.gate, SOURCES.rollback], detailType: ['CDEvent'] },
    targets: [new targets.ApiDestination(spec.sink, {
      event: events.RuleTargetInput.fromEventPath('$.detail'),
      headerParameters: { 'Content-Type': 'application/cloudevents+json; charset=utf-8' },
      deadLetterQueue: spec.deadLetterQueue,
      retryAttempts: 185,
      maxEventAge: Duration.hours(24),
    })],
  });
}
