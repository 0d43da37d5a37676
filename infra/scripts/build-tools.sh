# Sourced by sam-build.sh and cdk-synth.sh: the SAM CLI and cargo-lambda (with its zig linker)
# from PyPI in .venv-sam, on PATH, and the arm64 Rust target. One cargo-lambda, one target
# directory (the workspace's target/): sam build and cdk synth share one arm64 release build.
venv=${SAM_VENV:-.venv-sam}
if [ ! -x "$venv/bin/sam" ] || [ infra/requirements-sam.txt -nt "$venv/.installed" ] || [ infra/requirements-build.txt -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r infra/requirements-sam.txt
  touch "$venv/.installed"
fi
export PATH="$PWD/$venv/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null
