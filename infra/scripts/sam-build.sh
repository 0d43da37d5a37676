#!/usr/bin/env bash
# `sam build` as a user runs it before `sam deploy`: every function of template.yaml built by
# cargo-lambda for arm64 (BuildMethod: rust-cargolambda, the workspace's release profile) into
# .aws-sam/; then `sam validate --lint` on the same template. Prints how long the build took.
set -euo pipefail
cd "$(dirname "$0")/../.."
. infra/scripts/build-tools.sh
export SAM_CLI_TELEMETRY=0
start=$(date +%s)
sam build --template-file template.yaml --build-dir .aws-sam/build
built=$(( $(date +%s) - start ))
sam validate --lint --template-file template.yaml
for f in WebhookFunction ScanGateFunction AlarmRollbackFunction TenantOnboardingFunction; do
  b=".aws-sam/build/$f/bootstrap"
  [ -f "$b" ] || { echo "sam build made no $b" >&2; exit 1; }
  # ELF e_machine 183 is AArch64.
  machine=$(od -An -t u2 -j 18 -N 2 "$b" | tr -d ' ')
  [ "$machine" = 183 ] || { echo "$b is not an arm64 ELF binary" >&2; exit 1; }
done
echo "sam build: 4 functions for arm64 in ${built} s; sam validate --lint passed"
