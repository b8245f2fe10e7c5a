#!/usr/bin/env bash
# THE test command (README.md: `scripts/test.sh`; .ci/run runs exactly this).
#   1. installs the real RocketMQ clients (scripts/setup-clients.sh, fast when present)
#   2. cargo fmt --check, cargo clippy --all-targets -D warnings
#   3. cargo test --release: unit tests, then the end-to-end tests that drive mqnamesrv/mqbroker
#      with the Python (C++ core) and JavaScript clients. Release because the e2e tests move
#      10 000-message runs through the broker; the build cost is paid once.
#   4. the micro-benchmarks (benches/micro.rs, benches/codec.rs) run once and print ns/op.
# Env: SHARDMQ_E2E_COUNT (messages per e2e run, default 10000), CARGO_TEST_ARGS (extra args to
# cargo test, e.g. a test-name filter), SHARDMQ_KEEP_TEST_DIRS=1 (keep target/test-tmp dirs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==== %s\n' "$*"; }

step "setup clients"
scripts/setup-clients.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --release"
# e2e tests each start their own nameserver+broker on free loopback ports; two at a time suits
# a 2-core machine (each client program also needs a core).
RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test --release ${CARGO_TEST_ARGS:-}

step "micro-benchmarks run and print (numbers, not assertions)"
# Only that they run: a [[bench]] without `harness = false` compiles but its main never runs.
out=$(cargo bench --bench micro --bench codec 2>&1) || { printf '%s\n' "$out"; exit 1; }
printf '%s\n' "$out" | grep 'ns/op' || true
for b in micro codec; do
  printf '%s\n' "$out" | grep -A1 "Running benches/$b.rs" | grep -q 'ns/op' \
    || { echo "benches/$b.rs printed no ns/op line"; exit 1; }
done

step "all checks passed"
