/**
 * The construct synthesized with the example policy (no bundling), for the construct's tests.
 */
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Eddo, EddoProps } from '../lib';

export const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'policy', 'example.yaml');

/** The `Eddo` construct with the example policy and `props`, as a template. */
export function synth(props: Partial<EddoProps> = {}): Template {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Test');
  new Eddo(stack, 'Eddo', { policyFile: EXAMPLE, policyParameterTier: ssm.ParameterTier.ADVANCED, ...props });
  return Template.fromStack(stack);
}
