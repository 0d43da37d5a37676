#!/usr/bin/env bash
# `make bench`: every figure BENCHMARKS.md reports, measured on this machine and written into its
# generated sections (see infra/scripts/bench_report.py).
#
#   1. criterion benches of each function's hot path (corpus inputs, no network), and of the
#      policy's reload and cached read;
#   2. the bench runner: each release binary on the local runtime endpoint against moto on
#      loopback: cold starts, warm latency split into eddo's own time and AWS wait, memory
#      after 10,000 invocations, cost per million events;
#   3. the arm64 bootstrap and zip sizes, built as `sam build` builds them;
#   4. the long soak (infra/scripts/soak.sh): the gate's, alarm-rollback's and
#      tenant-onboarding's flows under injected faults, 10,080 flows over 84 seeds, summed in
#      target/soak/summary.md (copied into BENCHMARKS.md by hand: the violations must be 0).
#
# BENCH_PARTS picks parts (default "criterion functions size soak"); BENCH_RUNNER_ARGS passes options
# to the runner (e.g. "--cold 5 --rounds 2 --per-round 200" for a quick look).
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=${BENCH_PARTS:-criterion functions size soak}
report=(python3 infra/scripts/bench_report.py BENCHMARKS.md)
mkdir -p target/bench

for part in $parts; do
  case $part in
    criterion)
      for bench in eddo-webhook:handler eddo-scan-gate:signal eddo-alarm-rollback:alarm eddo-tenant-onboarding:request; do
        cargo bench --locked -p "${bench%%:*}" --bench "${bench##*:}"
      done
      # The policy's reload and cached read, and GetParameter calls per 1,000 events by rate.
      cargo bench --locked -p eddo --features policy-store --bench policy | tee target/bench/policy.txt
      "${report[@]}" --criterion
      ;;
    functions)
      # The functions exactly as shipped (release profile), and what their cold starts are
      # compared with: the bare lambda_runtime function (tests/fixture_function.rs) and the SDK
      # floor (tests/sdk_floor.rs); the runner apart, so that its own dependencies' features do
      # not reach the functions' build.
      cargo build --locked --release -p eddo-webhook -p eddo-scan-gate -p eddo-alarm-rollback -p eddo-tenant-onboarding --bins
      cargo build --locked --release -p eddo-tests --bin fixture-function --bin sdk-floor
      cargo build --locked --release -p eddo-local --bin eddo-local
      # shellcheck disable=SC2086
      EDDO_BINARY_DIR=target/release target/release/eddo-local measure ${BENCH_RUNNER_ARGS:-} --out target/bench/functions.md
      "${report[@]}" --functions target/bench/functions.md
      ;;
    soak)
      infra/scripts/soak.sh
      ;;
    size)
      infra/scripts/size.sh
      "${report[@]}" --size target/bench/size.md
      ;;
    *)
      echo "unknown part $part (criterion, functions, size)" >&2
      exit 2
      ;;
  esac
done
