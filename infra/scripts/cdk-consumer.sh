#!/usr/bin/env bash
# The packaged construct as a user gets it (after make cdk-package): in a fresh folder outside the
# repository, with no cargo on PATH and no EDDO_CLI,
#  1. the package's prebuilt functions and checker are this checkout's (its manifest's commit and
#     source digest);
#  2. a TypeScript app (the example app, infra/cdk/bin/eddo.ts, importing '@eddo-dev/cdk' as a
#     user does) installs the npm tarball, compiles against its types and synthesizes with a
#     policy: the functions are the package's arm64 bootstraps and the policy is checked by its
#     WebAssembly checker; a policy with a mistake fails synth with eddo's message;
#  3. a Python app (infra/cdk/consumer/app.py) installs the wheel and synthesizes the same
#     template;
#  4. the template passes cfn-lint, and the local stack plays the demo on it.
# Prints the synth times (BENCHMARKS.md, "The construct library").
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
venv=${VENV:-.venv}
tarball=$(ls "$root"/infra/cdk/dist/packages/js/*.jsii.tgz)
wheel=$(ls "$root"/infra/cdk/dist/packages/python/*.whl)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# What a user's machine has: node, npm and python, no Rust.
consumer_path=$(tr ':' '\n' <<<"$PATH" | grep -v -e '\.cargo' -e '\.rustup' | paste -sd: -)
if PATH=$consumer_path command -v cargo >/dev/null; then
  echo "cdk-consumer: cargo is still on the consumer's PATH ($(PATH=$consumer_path command -v cargo))" >&2
  exit 1
fi
unset EDDO_CLI
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# 1. What the package carries is this checkout's.
mkdir -p "$work/unpacked" && tar xzf "$tarball" -C "$work/unpacked"
node -e '
  const path = require("path"), fs = require("fs"), { createHash } = require("crypto");
  const m = require(process.argv[1]);
  const [commit, source] = process.argv.slice(2);
  if (m.commit !== commit || m.source !== source) {
    console.error(`cdk-consumer: the package was built from ${m.commit} (${m.source}), not this checkout ${commit} (${source})`);
    process.exit(1);
  }
  const wasm = path.join(path.dirname(process.argv[1]), "eddo.wasm");
  if (createHash("sha256").update(fs.readFileSync(wasm)).digest("hex") !== m.checker) {
    console.error("cdk-consumer: the package'"'"'s checker is not the one its manifest names");
    process.exit(1);
  }' "$work/unpacked/package/assets/manifest.json" "$(git rev-parse HEAD)" \
  "$(infra/scripts/source-digest.sh)"

# 2. TypeScript.
context=$(cargo run --quiet --locked -p eddo-local --bin eddo-local -- cdk-context |
  node -e '
    // A user app as `cdk init` makes it: the current recommended feature flags (the example
    // app'"'"'s cdk.json), with the local stack'"'"'s settings.
    const c = { ...require(process.argv[1]).context, ...JSON.parse(require("fs").readFileSync(0)) };
    c["eddo:policyFile"] = "policy/eddo.yaml";
    // As the CDK CLI runs an app: each asset named in the template (what the check below reads).
    c["aws:cdk:enable-asset-metadata"] = true;
    console.log(JSON.stringify(c))' \
    "$root/infra/cdk/cdk.json")
ts=$work/ts
mkdir -p "$ts"
cp infra/cdk/consumer/package.json infra/cdk/consumer/package-lock.json infra/cdk/consumer/tsconfig.json "$ts/"
cp infra/cdk/bin/eddo.ts "$ts/app.ts"
# The policy where the README puts it, named relative to the app (the folder holds policy/).
mkdir -p "$ts/policy" && cp infra/policy/example.yaml "$ts/policy/eddo.yaml"
(
  cd "$ts"
  npm ci --no-audit --no-fund --loglevel=error
  npm install --no-save --no-audit --no-fund --loglevel=error "$tarball"
  npx tsc -p .
)
start=$(date +%s%N)
(cd "$ts" && PATH=$consumer_path CDK_OUTDIR="$ts/cdk.out" CDK_CONTEXT_JSON="$context" node app.js)
ts_ms=$(ms "$start")
template=$ts/cdk.out/Eddo.template.json
node -e '
  const fs = require("fs"), path = require("path"), { createHash } = require("crypto");
  const [out, unpacked] = process.argv.slice(1);
  const t = JSON.parse(fs.readFileSync(path.join(out, "Eddo.template.json")));
  const manifest = require(path.join(unpacked, "assets/manifest.json"));
  let n = 0;
  for (const r of Object.values(t.Resources)) {
    if (r.Type !== "AWS::Lambda::Function") continue;
    const binary = r.Metadata["eddo:binary"];
    const b = path.join(out, r.Metadata["aws:asset:path"], "bootstrap");
    const sha = createHash("sha256").update(fs.readFileSync(b)).digest("hex");
    if (sha !== manifest.functions[binary]) { console.error(`cdk-consumer: ${binary}'"'"'s asset is not the package'"'"'s bootstrap`); process.exit(1); }
    n++;
  }
  if (n !== 4) { console.error(`cdk-consumer: ${n} functions, not 4`); process.exit(1); }
' "$ts/cdk.out" "$work/unpacked/package"
# A mistake fails synth with eddo's message, from the packaged checker.
printf 'version: 1\nservices:\n  x:\n    repositories: [a/b]\n    nope: 1\n' >"$work/bad.yaml"
bad=$(node -e 'const c = JSON.parse(process.argv[1]); c["eddo:policyFile"] = process.argv[2]; console.log(JSON.stringify(c))' "$context" "$work/bad.yaml")
if (cd "$ts" && PATH=$consumer_path CDK_OUTDIR="$work/bad.out" CDK_CONTEXT_JSON="$bad" node app.js) 2>"$work/bad.err"; then
  echo "cdk-consumer: a policy with a mistake synthesized" >&2
  exit 1
fi
grep -q "bad.yaml:5:5: services.x.nope: unknown field" "$work/bad.err" || {
  echo "cdk-consumer: the mistake was not said as eddo says it:" >&2
  cat "$work/bad.err" >&2
  exit 1
}

# 3. Python.
py=$work/py
mkdir -p "$py/policy" && cp infra/policy/example.yaml "$py/policy/eddo.yaml"
python3 -m venv "$py/.venv"
"$py/.venv/bin/pip" install --quiet --disable-pip-version-check -r infra/cdk/consumer/requirements.txt "$wheel"
start=$(date +%s%N)
(cd "$py" && PATH=$consumer_path CDK_OUTDIR="$py/cdk.out" CDK_CONTEXT_JSON="$context" "$py/.venv/bin/python" "$root/infra/cdk/consumer/app.py")
py_ms=$(ms "$start")
node -e '
  const fs = require("fs");
  const [a, b] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f)));
  const canon = (v) => Array.isArray(v) ? v.map(canon) : v && typeof v === "object"
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;
  if (JSON.stringify(canon(a)) !== JSON.stringify(canon(b))) {
    console.error("cdk-consumer: the Python app synthesized another template than the TypeScript one");
    process.exit(1);
  }' "$template" "$py/cdk.out/Eddo.template.json"

# 4. cfn-lint, and the demo on the consumer's template.
# W3005 as in cfn-lint.sh: every CDK function DependsOn its role as well as naming it.
"$venv/bin/cfn-lint" --ignore-checks W3005 -- "$template"
cargo run --quiet --locked -p eddo-local --bin eddo-local -- demo --template "$template" >"$work/demo.log" 2>&1 || {
  tail -40 "$work/demo.log" >&2
  echo "cdk-consumer: the demo failed on the consumer's template" >&2
  exit 1
}
echo "cdk-consumer: TypeScript and Python apps synthesize the same template from the package without cargo (synth ${ts_ms} ms and ${py_ms} ms); cfn-lint passes; the demo plays on it"
