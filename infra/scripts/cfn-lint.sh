#!/usr/bin/env bash
# cfn-lint on what CloudFormation runs: the source templates, and template.yaml after its
# transform (AWS's SAM translator: infra/local/translate.py) for the parameter choices a user has:
# the defaults, repositories tracked by name, builds and scans on push with repositories tracked
# by owner, sbt-aws (current) on, no reserved concurrency, a customer-managed KMS key and the
# policy in S3, and sbt-aws's legacy generation with its own answer source.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-.venv}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$venv/bin/cfn-lint" template.yaml infra/buildspecs/tenant-stack.yaml
# What `sam publish` puts in the Serverless Application Repository.
"$venv/bin/python" infra/scripts/sar-check.py

translate() {
  local name=$1
  shift
  "$venv/bin/python" infra/local/translate.py template.yaml "$@" >"$out/translated.out"
  "$venv/bin/python" -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["template"], open(sys.argv[2], "w"), indent=1)' \
    "$out/translated.out" "$out/$name.json"
}
translate defaults
translate by-name BuildProjectName=app-build TrackedRepositories=acme/app,acme/api
translate several BuildProjectName=app-build SastProjectName=app-sast TrackedBranches=main,release \
  TrackedOwners=acme,acme/platform SbtControlPlaneEventSource=sbt.control.plane WebhookReservedConcurrency=0 \
  KmsKeyArn=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab \
  PolicyObject=s3://acme-platform-eddo/policy/eddo.yaml
translate sbt-legacy SbtGeneration=legacy \
  SbtControlPlaneEventSource=controlPlaneEventSource SbtApplicationPlaneEventSource=acme.app.plane
translate cdevents CDEventsSinkUrl=https://events.example.com/cdevents CDEventsSinkToken=not-a-real-token
translate forges GitHubApp=on GitHubApiUrl=https://ghe.example.com/api/v3 \
  GitLabStatuses=on GitLabApiUrl=https://gitlab.example.com/api/v4 \
  KmsKeyArn=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab

# Every warning and every error fails.
"$venv/bin/cfn-lint" -- "$out"/*.json
choices=$(ls "$out"/*.json | wc -l)
# The linter must catch what CloudFormation refuses in a translated template: a function in
# Fn::Join's delimiter (what template.yaml once had, before its grants moved to Fn::ForEach).
cat >"$out/refused.yaml" <<'YAML'
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Join [!Sub "-${AWS::Region}-", [a, b]]
YAML
"$venv/bin/python" infra/local/translate.py "$out/refused.yaml" >"$out/translated.out"
"$venv/bin/python" -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["template"], open(sys.argv[2], "w"), indent=1)' \
  "$out/translated.out" "$out/refused.json"
if "$venv/bin/cfn-lint" "$out/refused.json" >"$out/refused.lint" 2>&1 || ! grep -Eq 'E10(18|22)' "$out/refused.lint"; then
  echo "cfn-lint no longer refuses a function in Fn::Join's delimiter: the lint above proves nothing" >&2
  cat "$out/refused.lint" >&2
  exit 1
fi
# The CDK app's template (infra/cdk, compiled by make setup), as cdk synth writes it, with the
# example policy: as the local stack runs it (a tenant request sender listed, sbt-aws on) and
# with every optional part off. Functions are not bundled: the template is the same either way but for the
# assets' hashes.
cdk_synth() {
  local name=$1 context=$2
  # As the CDK CLI runs the app: cdk.json's feature flags under the given context.
  context=$(node -e 'console.log(JSON.stringify({ ...require("./infra/cdk/cdk.json").context, ...JSON.parse(process.argv[1]) }))' "$context")
  CDK_OUTDIR="$out/cdk-$name" CDK_CONTEXT_JSON="$context" node infra/cdk/dist/bin/eddo.js
  cp "$out/cdk-$name/Eddo.template.json" "$out/cdk-$name.json"
}
cdk_synth local '{"aws:cdk:bundling-stacks":[],"eddo:tenantRequestSenderRoleArns":"arn:aws:iam::123456789012:role/eddo-local-control-plane"}'
cdk_synth minimal '{"aws:cdk:bundling-stacks":[],"eddo:buildProject":"","eddo:sastProject":"","eddo:sbtControlPlaneEventSource":""}'
# W3005: every CDK function DependsOn its role as well as naming it (aws-cdk-lib's own choice,
# harmless). Every other warning and every error fails.
"$venv/bin/cfn-lint" --ignore-checks W3005 -- "$out"/cdk-*.json
echo "cfn-lint: template.yaml and its translations ($choices parameter choices) pass; a refused delimiter is caught; the CDK app's template passes (2 settings)"
