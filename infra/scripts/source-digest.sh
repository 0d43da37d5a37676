#!/usr/bin/env bash
# The digest of the sources the packaged functions and checker are built from, as git's index
# holds them: what cdk-package.sh records in the package's manifest and cdk-consumer.sh checks.
set -euo pipefail
cd "$(dirname "$0")/../.."
git ls-files -s -- Cargo.toml Cargo.lock rust-toolchain.toml shared functions cli | sha256sum | cut -d' ' -f1
