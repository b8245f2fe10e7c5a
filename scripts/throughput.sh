#!/usr/bin/env bash
# Measures send throughput (messages/s, acknowledged) of each real client against mqbroker in
# each flush mode and prints a table. For the report, not a test.
#   scripts/throughput.sh [COUNT]      (default 20000 messages per run, 100-byte bodies)
# Builds release binaries, runs one nameserver + one master broker per flush mode on free
# loopback ports under target/throughput/, and tears them down afterwards.
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
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
broker_port() {
  while :; do
    p=$(free_port)
    python3 - "$p" <<'PYEOF' && { echo "$p"; return; }
import socket, sys
p = int(sys.argv[1])
for q in (p - 2, p, p + 1):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", q))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PYEOF
  done
}
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

rate() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print("%s\t%s\t%s" % (d.get("msgs_per_sec"), d.get("acked"), d.get("errors")))'; }

printf 'flush\tclient\tmode\tmsgs/s\tacked\terrors\n'
for FLUSH in SYNC_FLUSH ASYNC_FLUSH; do
  D="$WORK/$FLUSH"; mkdir -p "$D/home"
  NS=$(free_port); BP=$(broker_port)
  printf 'listenPort=%s\nkvConfigPath=%s/kv.json\n' "$NS" "$D" > "$D/ns.properties"
  cat > "$D/broker.properties" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=$FLUSH
listenPort=$BP
brokerIP1=127.0.0.1
storePathRootDir=$D/store
storePathCommitLog=$D/store/commitlog
autoCreateTopicEnable=true
defaultTopicQueueNums=4
namesrvAddr=127.0.0.1:$NS
CONF
  HOME="$D/home" target/release/mqnamesrv -c "$D/ns.properties" 2>"$D/ns.log" & PIDS+=($!)
  wait_port "$NS"
  HOME="$D/home" target/release/mqbroker -c "$D/broker.properties" -n "127.0.0.1:$NS" 2>"$D/broker.log" & PIDS+=($!)
  wait_port "$BP"; sleep 2
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
  cleanup; PIDS=()
done
