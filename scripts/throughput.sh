#!/usr/bin/env bash
# Measures send throughput (messages/s, acknowledged) of each real client against mqbroker in
# each flush mode and prints a table. For the report, not a test.
#   scripts/throughput.sh [COUNT]      (default 20000 messages per run, 100-byte bodies)
# Builds release binaries, runs one nameserver + one master broker per flush mode on free
# loopback ports under target/throughput/ (scripts/bench-lib.sh: SHARDS shards, by default half
# the cores), and tears them down afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COUNT="${1:-20000}"
scripts/setup-clients.sh >/dev/null
cargo build --release --quiet --bin mqnamesrv --bin mqbroker
PY="$ROOT/target/clients/venv-rmq/bin/python"
PY44="$ROOT/target/clients/venv-rmq44/bin/python"
WORK="$ROOT/target/throughput"
rm -rf "$WORK"; mkdir -p "$WORK"
source scripts/bench-lib.sh
trap bench_cleanup EXIT

rate() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print("%s\t%s\t%s" % (d.get("msgs_per_sec"), d.get("acked"), d.get("errors")))'; }

printf 'flush\tclient\tmode\tmsgs/s\tacked\terrors\n'
for FLUSH in SYNC_FLUSH ASYNC_FLUSH; do
  D="$WORK/$FLUSH"
  start_namesrv "$D"
  start_broker "$D" broker-a "$FLUSH" ASYNC_MASTER 0 defaultTopicQueueNums=4
  NS=$NS_PORT
  sleep 1
  A=(--namesrv "127.0.0.1:$NS" --count "$COUNT" --body-size 100 --out /dev/null)
  # warm-up creates the topic (the JS client cannot auto-create it)
  HOME="$D/home" "$PY" tests/clients/python/producer.py "${A[@]}" --topic tp --count 10 2>/dev/null || true
  for run in "python sync:$PY:sync" "python44 async:$PY44:async" "python44 batch:$PY44:batch"; do
    name=${run%%:*}; rest=${run#*:}; exe=${rest%%:*}; mode=${rest#*:}
    r=$(HOME="$D/home" "$exe" tests/clients/python/producer.py "${A[@]}" --topic tp --mode "$mode" 2>&1 >/dev/null | rate || echo "-")
    printf '%s\t%s\t%s\t%s\n' "$FLUSH" "${name% *}" "$mode" "$r"
  done
  for inflight in 1 32; do
    r=$(node tests/clients/js/producer.js "${A[@]}" --topic tp --inflight "$inflight" 2>&1 >/dev/null | rate || echo "-")
    printf '%s\t%s\t%s\t%s\n' "$FLUSH" "ali-ons" "sync x$inflight" "$r"
  done
  bench_cleanup
done
