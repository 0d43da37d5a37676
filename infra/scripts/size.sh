#!/usr/bin/env bash
# Builds each function's arm64 bootstrap as `sam build` does (cargo-lambda, release profile) and
# prints its stripped and zipped size. Used for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r infra/requirements-build.txt
fi
export PATH="$PWD/$venv/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
start=$(date +%s)
cargo lambda build --release --arm64 --bin webhook --bin scan-gate --lambda-dir target/lambda
echo "build: $(( $(date +%s) - start )) s"
python3 - <<'PY'
import glob, os, zipfile
for d in sorted(glob.glob("target/lambda/*/")):
    name, binary = os.path.basename(d.rstrip("/")), os.path.join(d, "bootstrap")
    if not os.path.exists(binary):
        continue
    with open(binary, "rb") as f:
        head = f.read(20)
    # ELF e_machine 183 is AArch64.
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183:
        raise SystemExit(f"{binary} is not an arm64 ELF binary")
    zpath = os.path.join(d, "bootstrap.zip")
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(binary, "bootstrap")
    b, zb = os.path.getsize(binary), os.path.getsize(zpath)
    print(f"{name:<12} bootstrap {b:>9} bytes ({b/2**20:.2f} MiB)   zip {zb:>9} bytes ({zb/2**20:.2f} MiB)")
PY
