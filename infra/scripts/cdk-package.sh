#!/usr/bin/env bash
# The construct library as it is published, with what it carries so that a synth needs neither
# Rust nor Docker: the four functions' arm64 bootstraps (cargo-lambda's builds of this checkout,
# as `make sam-build` and `make cdk-synth` leave them in target/lambda/; refused if older than a
# source they are built from) and the policy checker (the eddo CLI compiled to wasm32-wasip1),
# with a manifest of their SHA-256 and the commit and sources they came from. jsii-pacmak packs the
# npm tarball and builds the Python wheel from it, into infra/cdk/dist/packages; each is checked
# to hold the library and what it carries and nothing else (no tests, no example app, no build
# cache, no cdk.out), and their sizes are printed (BENCHMARKS.md, "The construct library").
set -euo pipefail
cd "$(dirname "$0")/../.."
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
target=${CARGO_TARGET_DIR:-target}
assets=infra/cdk/assets
rm -rf "$assets" infra/cdk/dist/packages
mkdir -p "$assets/functions"

# What a function's binary is built from (cargo rebuilds it when one of these is newer, so a
# bootstrap older than one of them is not this checkout's).
newest=$(git ls-files -z -- Cargo.toml Cargo.lock shared/Cargo.toml shared/src 'functions/*/Cargo.toml' 'functions/*/src/*' |
  xargs -0 stat -c %Y | sort -n | tail -1)
for binary in webhook scan-gate alarm-rollback tenant-onboarding; do
  b="$target/lambda/$binary/bootstrap"
  [ -f "$b" ] || { echo "cdk-package: no $b: build the functions first (make sam-build)" >&2; exit 1; }
  # ELF e_machine 183 is AArch64.
  [ "$(od -An -t u2 -j 18 -N 2 "$b" | tr -d ' ')" = 183 ] || { echo "cdk-package: $b is not an arm64 ELF binary" >&2; exit 1; }
  if [ "$(stat -c %Y "$b")" -lt "$newest" ]; then
    echo "cdk-package: $b is older than a source it is built from: build the functions again (make sam-build)" >&2
    exit 1
  fi
  mkdir -p "$assets/functions/$binary"
  cp "$b" "$assets/functions/$binary/bootstrap"
done
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
cargo build --quiet --locked --release -p eddo-cli --bin eddo --no-default-features --target wasm32-wasip1
cp "$target/wasm32-wasip1/release/eddo.wasm" "$assets/eddo.wasm"

digest=$(infra/scripts/source-digest.sh)
dirty=$(git status --porcelain -- Cargo.toml Cargo.lock rust-toolchain.toml shared functions cli | wc -l)
node -e '
  const [assets, commit, source, dirty, version] = process.argv.slice(1);
  const { createHash } = require("node:crypto");
  const fs = require("node:fs");
  const sha = (f) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");
  const functions = {};
  for (const b of fs.readdirSync(`${assets}/functions`).sort()) functions[b] = sha(`${assets}/functions/${b}/bootstrap`);
  const manifest = { version, commit, source, uncommittedChanges: Number(dirty), functions, checker: sha(`${assets}/eddo.wasm`) };
  fs.writeFileSync(`${assets}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
' "$assets" "$(git rev-parse HEAD)" "$digest" "$dirty" "$(node -p 'require("./infra/cdk/package.json").version')"

cd infra/cdk
npx jsii
npx jsii-pacmak --targets js python
tarball=$(ls dist/packages/js/*.jsii.tgz)
wheel=$(ls dist/packages/python/*.whl)
files=$(tar tzf "$tarball")
unexpected=$(grep -Ev '^package/(\.jsii|LICENSE|README\.md|package\.json|dist/lib/[a-z]+\.(js|d\.ts)|assets/(manifest\.json|eddo\.wasm|functions/[a-z-]+/bootstrap))$' <<<"$files" || true)
if [ -n "$unexpected" ]; then
  echo "cdk-package: $tarball holds what the library does not need:" >&2
  echo "$unexpected" >&2
  exit 1
fi
for need in package/.jsii package/dist/lib/index.js package/dist/lib/index.d.ts package/LICENSE \
  package/assets/manifest.json package/assets/eddo.wasm package/assets/functions/{webhook,scan-gate,alarm-rollback,tenant-onboarding}/bootstrap; do
  grep -qx "$need" <<<"$files" || { echo "cdk-package: $tarball has no $need" >&2; exit 1; }
done
python3 - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for need in ("eddo_cdk/__init__.py", "eddo_cdk/py.typed"):
    if need not in names:
        sys.exit(f"cdk-package: {sys.argv[1]} has no {need}")
if not any(n.startswith("eddo_cdk/_jsii/") and n.endswith(".jsii.tgz") for n in names):
    sys.exit(f"cdk-package: {sys.argv[1]} carries no jsii assembly")
PY
size() { stat -c %s "$1"; }
echo "cdk-package: $(basename "$tarball") $(size "$tarball") bytes ($(wc -l <<<"$files") files), $(basename "$wheel") $(size "$wheel") bytes"
