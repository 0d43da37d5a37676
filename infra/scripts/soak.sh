#!/usr/bin/env bash
# The long soak: SOAK_SEEDS seeds (default 84, from SOAK_FIRST, default 2001), each playing
# SOAK_FLOWS flows (default 40) of each function that decides: 84 x 40 x 3 = 10,080 flows. Each
# seed is its own `eddo-local soak` process with its own moto (the soak's clock is one per
# process), SOAK_JOBS at once (default 8: the soak mostly waits on Lambda's simulated timeouts and
# the SDK's backoff). 40 flows a seed keeps each seed's simulated time near the gate's 30-minute
# deadline, as one platform's afternoon would be. Each seed's tables go to target/soak/, with its
# trace (every invocation's outcome at the soak's clock: what a violation is read against) in
# seed-N.err; infra/scripts/soak_sum.py sums them; exit 1 on any violation.
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=${SOAK_SEEDS:-84}
first=${SOAK_FIRST:-2001}
out=target/soak
rm -rf "$out" && mkdir -p "$out"
cargo build --locked --release -p eddo-local --bin eddo-local
seq "$first" $((first + seeds - 1)) | xargs -P "${SOAK_JOBS:-8}" -I{} sh -c \
  "EDDO_SOAK_TRACE=1 target/release/eddo-local soak --seed {} --seeds 1 --flows ${SOAK_FLOWS:-40} --faults 0.1 --kills 0.1 > $out/seed-{}.log 2> $out/seed-{}.err || true"
python3 infra/scripts/soak_sum.py "$out" | tee "$out/summary.md"
