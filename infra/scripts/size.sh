#!/usr/bin/env bash
# Builds each function's arm64 bootstrap as `sam build` does (cargo-lambda, release profile) and
# prints its stripped and zipped size as a Markdown table, also written to target/bench/size.md
# for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r infra/requirements-build.txt
fi
export PATH="$PWD/$venv/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
start=$(date +%s)
functions=(webhook scan-gate alarm-rollback tenant-onboarding)
cargo lambda build --release --arm64 "${functions[@]/#/--bin=}" --lambda-dir target/lambda
build=$(( $(date +%s) - start ))
mkdir -p target/bench
BUILD_SECONDS=$build FUNCTIONS="${functions[*]}" python3 - <<'PY' | tee target/bench/size.md
import os, zipfile
target = 8_000_000
print("| function | stripped arm64 `bootstrap` | zip (deflate 9) | target < 8 MB unzipped |")
print("|---|---|---|---|")
for name in os.environ["FUNCTIONS"].split():
    d = os.path.join("target/lambda", name)
    binary = os.path.join(d, "bootstrap")
    if not os.path.exists(binary):
        raise SystemExit(f"{binary} was not built")
    with open(binary, "rb") as f:
        head = f.read(20)
    # ELF e_machine 183 is AArch64.
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183:
        raise SystemExit(f"{binary} is not an arm64 ELF binary")
    zpath = os.path.join(d, "bootstrap.zip")
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(binary, "bootstrap")
    b, zb = os.path.getsize(binary), os.path.getsize(zpath)
    ok = "met" if b < target else "**over**"
    print(f"| {name} | **{b:,} bytes ({b/2**20:.2f} MiB)** | {zb:,} bytes ({zb/2**20:.2f} MiB) | {ok} |")
print(f"\nBuilt by `cargo lambda build --release --arm64` in {os.environ['BUILD_SECONDS']} s.")
PY
