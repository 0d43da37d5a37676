#!/usr/bin/env bash
# `cdk synth` as a user runs it before `cdk deploy`: the CDK app of infra/cdk (cdk.json), its
# policy checked by eddo's parser, its four functions built by cargo-lambda-cdk's RustFunction
# (cargo lambda build --release --arm64, in the workspace's target/, which `make sam-build`
# shares) into infra/cdk/cdk.out. Checks that each function's asset is an arm64 bootstrap, and
# prints how long the synth took.
set -euo pipefail
cd "$(dirname "$0")/../.."
. infra/scripts/build-tools.sh
export CDK_DISABLE_CLI_TELEMETRY=true
cd infra/cdk
start=$(date +%s)
npx cdk synth --quiet --no-notices --no-version-reporting -c eddo:functionsFrom=source
took=$(( $(date +%s) - start ))
template=cdk.out/Eddo.template.json
assets=$(node -e '
  const t = require(process.argv[1]);
  for (const r of Object.values(t.Resources)) {
    if (r.Type === "AWS::Lambda::Function") console.log(r.Metadata["aws:asset:path"] + " " + r.Metadata["eddo:binary"]);
  }' "$PWD/$template")
count=0
while read -r asset binary; do
  b="cdk.out/$asset/bootstrap"
  [ -f "$b" ] || { echo "cdk synth made no bootstrap for $binary ($b)" >&2; exit 1; }
  # ELF e_machine 183 is AArch64.
  machine=$(od -An -t u2 -j 18 -N 2 "$b" | tr -d ' ')
  [ "$machine" = 183 ] || { echo "$b ($binary) is not an arm64 ELF binary" >&2; exit 1; }
  count=$((count + 1))
done <<<"$assets"
[ "$count" = 4 ] || { echo "cdk synth bundled $count functions, not 4" >&2; exit 1; }
echo "cdk synth: 4 functions for arm64 in ${took} s ($template)"
