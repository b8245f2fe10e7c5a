#!/usr/bin/env bash
# Runs one mqbench workload against shardmq (started here from target/release) and against a
# second RocketMQ-compatible cluster given by its nameserver address, alternating runs, and
# writes one side-by-side report (markdown + SVG plots) with the ratios.
#
#   scripts/bench-compare.sh --peer HOST:PORT [--peer-label upstream] [--peer-pid PID]
#       [--rounds 3] [--flush SYNC_FLUSH|ASYNC_FLUSH] [--out target/bench-compare]
#       [-- mqbench run options, e.g. --rate 5000 --producers 16 --size 128 --duration 20]
#
# Each round runs shardmq then the peer (so drift of the machine hits both alike); each side's
# runs are merged (histograms, never averaged percentiles) by `mqbench compare`.
# Env: BIN_DIR (binaries, default target/release), SHARDMQ_SKIP_BUILD=1 (no cargo build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bench-lib.sh
PEER="" PEER_LABEL="peer" PEER_PID="" ROUNDS=3 FLUSH=SYNC_FLUSH OUT="$ROOT/target/bench-compare"
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) PEER=$2; shift 2;;
    --peer-label) PEER_LABEL=$2; shift 2;;
    --peer-pid) PEER_PID=$2; shift 2;;
    --rounds) ROUNDS=$2; shift 2;;
    --flush) FLUSH=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    --) shift; break;;
    *) echo "unknown option $1 (mqbench options go after --)" >&2; exit 2;;
  esac
done
[ -n "$PEER" ] || { echo "usage: $0 --peer HOST:PORT [options] [-- mqbench options]" >&2; exit 2; }
ARGS=("$@")
[ "${SHARDMQ_SKIP_BUILD:-}" = 1 ] || cargo build --release --quiet --bin mqnamesrv --bin mqbroker --bin mqbench
trap 'bench_cleanup; rm -rf "$OUT/shardmq/store"' EXIT
rm -rf "$OUT"; mkdir -p "$OUT"
start_namesrv "$OUT/shardmq"
start_broker "$OUT/shardmq" broker-a "$FLUSH" ASYNC_MASTER 0
OURS="127.0.0.1:$NS_PORT"; OUR_PID=$BROKER_PID
A=() B=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: shardmq" >&2
  "$BIN_DIR/mqbench" run -n "$OURS" --label shardmq --broker-pid "$OUR_PID" \
    --json "$OUT/shardmq-$r.json" "${ARGS[@]}" > "$OUT/shardmq-$r.txt"
  A+=("$OUT/shardmq-$r.json")
  echo "== round $r: $PEER_LABEL" >&2
  PIDARG=(); [ -n "$PEER_PID" ] && PIDARG=(--broker-pid "$PEER_PID")
  "$BIN_DIR/mqbench" run -n "$PEER" --label "$PEER_LABEL" "${PIDARG[@]}" \
    --json "$OUT/peer-$r.json" "${ARGS[@]}" > "$OUT/peer-$r.txt"
  B+=("$OUT/peer-$r.json")
done
join() { local IFS=,; echo "$*"; }
"$BIN_DIR/mqbench" compare --out "$OUT" --a "shardmq=$(join "${A[@]}")" --b "$PEER_LABEL=$(join "${B[@]}")"
echo "report: $OUT/compare.md (plots: $OUT/*.svg)" >&2
