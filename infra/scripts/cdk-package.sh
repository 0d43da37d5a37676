#!/usr/bin/env bash
# The construct library as it is published: jsii-pacmak packs the npm tarball (npm pack, with the
# jsii assembly) and builds the Python wheel from it, into infra/cdk/dist/packages. Each is checked
# to hold the library and nothing else (no tests, no example app, no build cache, no cdk.out), and
# their sizes are printed (BENCHMARKS.md, "The construct library").
set -euo pipefail
cd "$(dirname "$0")/../cdk"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
rm -rf dist/packages
npx jsii
npx jsii-pacmak --targets js python
tarball=$(ls dist/packages/js/*.jsii.tgz)
wheel=$(ls dist/packages/python/*.whl)
files=$(tar tzf "$tarball")
unexpected=$(grep -Ev '^package/(\.jsii|LICENSE|README\.md|package\.json|dist/lib/[a-z]+\.(js|d\.ts))$' <<<"$files" || true)
if [ -n "$unexpected" ]; then
  echo "cdk-package: $tarball holds what the library does not need:" >&2
  echo "$unexpected" >&2
  exit 1
fi
for need in package/.jsii package/dist/lib/index.js package/dist/lib/index.d.ts package/LICENSE; do
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
