/**
 * What each function of the `Eddo` construct may do, one grant per idea: publish as its own
 * source, touch its own items, decrypt through one service, read the policy, start or read the
 * projects of one `eddo:role`. Each statement is added to the function's own role.
 */
import { Stack, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { ROLE_TAG } from './wiring';

/** The resources the grants name. */
export interface GrantedResources {
  readonly eventBus: events.IEventBus;
  readonly table: dynamodb.ITable;
  readonly kmsKey?: kms.IKey;
  readonly policyParameter?: ssm.IStringParameter;
  readonly policyObject?: s3assets.Asset;
  /** How long a function keeps a read of the policy (checked with the other props). */
  readonly policyCacheSeconds: number;
}

/** The grants of one `Eddo`'s functions, on its resources. */
export class Grants {
  constructor(private readonly stack: Stack, private readonly on: GrantedResources) {}

  /** Its own source only: no function can speak as another. */
  public publishes(f: lambda.Function, ...sources: string[]): void {
    f.addToRolePolicy(new iam.PolicyStatement({
      sid: 'PublishToTheEddoBus',
      actions: ['events:PutEvents'],
      resources: [this.on.eventBus.eventBusArn],
      conditions: { StringEquals: { 'events:source': sources } },
    }));
  }

  public items(f: lambda.Function, sid: string, actions: string[], leadingKeys: string[]): void {
    f.addToRolePolicy(new iam.PolicyStatement({
      sid,
      actions: actions.map((a) => `dynamodb:${a}`),
      resources: [this.on.table.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': leadingKeys } },
    }));
  }

  /** kms:Decrypt on the customer-managed key, through `service` only. */
  public decrypts(f: lambda.Function, sid: string, service: string): void {
    if (this.on.kmsKey) {
      f.addToRolePolicy(new iam.PolicyStatement({
        sid,
        actions: ['kms:Decrypt'],
        resources: [this.on.kmsKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `${service}.${this.stack.region}.amazonaws.com` } },
      }));
    }
  }

  /** Reads the policy through its cache, and says a refused version once (Policy Rejected). */
  public readsPolicy(f: lambda.Function, binary: string): void {
    const ttl = this.on.policyCacheSeconds;
    f.addEnvironment('EDDO_POLICY_TTL_SECS', Token.isUnresolved(ttl) ? Token.asString(ttl) : String(ttl));
    if (this.on.policyObject) {
      const object = this.on.policyObject;
      f.addEnvironment('EDDO_POLICY_OBJECT', `s3://${object.s3BucketName}/${object.s3ObjectKey}`);
      f.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ReadThePolicy',
        actions: ['s3:GetObject'],
        resources: [object.bucket.arnForObjects(object.s3ObjectKey)],
      }));
    } else if (this.on.policyParameter) {
      f.addEnvironment('EDDO_POLICY_PARAMETER', this.on.policyParameter.parameterName);
      f.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ReadThePolicy',
        actions: ['ssm:GetParameter'],
        resources: [this.on.policyParameter.parameterArn],
      }));
      this.decrypts(f, 'DecryptThePolicy', 'ssm');
    }
    this.items(f, 'PolicyRejections', ['GetItem', 'PutItem', 'UpdateItem'], [`idem#policy-rejected#${binary}#*`]);
  }

  /**
   * `actions` on the projects tagged `eddo:role` with one of `roles`: one statement whatever the
   * policy's size (the function still refuses, in code, a project its policy does not give the
   * service at hand). CodeBuild gives `aws:ResourceTag` for StartBuild, BatchGetBuilds and
   * ListBuildsForProject.
   */
  public byRole(f: lambda.Function, sid: string, actions: string[], roles: string[]): void {
    f.addToRolePolicy(new iam.PolicyStatement({
      sid,
      actions,
      resources: [this.stack.formatArn({ service: 'codebuild', resource: 'project', resourceName: '*' })],
      conditions: { StringEquals: { [`aws:ResourceTag/${ROLE_TAG}`]: roles } },
    }));
  }

  /**
   * StartBuild on the projects tagged with `role`, and reading their builds back to find one it
   * started whose record was lost (eddo::codebuild::start).
   */
  public starts(f: lambda.Function, sid: string, role: string): void {
    this.byRole(f, sid, ['codebuild:StartBuild', 'codebuild:ListBuildsForProject', 'codebuild:BatchGetBuilds'], [role]);
  }
}
