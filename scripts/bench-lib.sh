# Helpers sourced by scripts/bench-report.sh, scripts/bench-compare.sh and scripts/throughput.sh:
# free ports, starting a shardmq nameserver + broker (or master + slave) from target/release on
# loopback, teardown. Not a command of its own.

# BIN_DIR: where mqnamesrv, mqbroker and mqbench are (default target/release).
BIN_DIR="${BIN_DIR:-$ROOT/target/release}"
BENCH_PIDS=()
bench_cleanup() { for p in "${BENCH_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; BENCH_PIDS=(); }
# SHARDS: the brokers' shardCount. The client shares the host, so by default the broker gets half
# the cores (at least one): on 2 cores one shard used about half the broker CPU per message of
# two and sent as much or more (ARCHITECTURE 36).
CORES=$(nproc)
SHARDS="${SHARDS:-$(( CORES / 2 > 0 ? CORES / 2 : 1 ))}"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# A port p with p-2 (VIP), p and p+1 (HA) free.
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
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_namesrv DIR -> sets NS_PORT
start_namesrv() {
  local d=$1; mkdir -p "$d/home"
  NS_PORT=$(free_port)
  printf 'listenPort=%s\nkvConfigPath=%s/kv.json\n' "$NS_PORT" "$d" > "$d/ns.properties"
  HOME="$d/home" "$BIN_DIR/mqnamesrv" -c "$d/ns.properties" >"$d/ns.log" 2>&1 &
  BENCH_PIDS+=($!)
  wait_port "$NS_PORT" || { echo "mqnamesrv did not start (see $d/ns.log)" >&2; return 1; }
}

# start_broker DIR NAME FLUSH ROLE BROKER_ID [extra properties...] -> sets BROKER_PORT, BROKER_PID
# BROKER_PROPS: more key=value properties (space separated) for every broker, e.g.
# BROKER_PROPS=warmMapedFileEnable=true.
start_broker() {
  local d=$1 name=$2 flush=$3 role=$4 id=$5; shift 5
  mkdir -p "$d/home"
  BROKER_PORT=$(broker_port)
  {
    printf 'brokerClusterName=DefaultCluster\nbrokerName=%s\nbrokerId=%s\nbrokerRole=%s\n' "$name" "$id" "$role"
    printf 'flushDiskType=%s\nlistenPort=%s\nbrokerIP1=127.0.0.1\n' "$flush" "$BROKER_PORT"
    printf 'storePathRootDir=%s/store\nstorePathCommitLog=%s/store/commitlog\n' "$d" "$d"
    printf 'autoCreateTopicEnable=true\nnamesrvAddr=127.0.0.1:%s\nshardCount=%s\n' "$NS_PORT" "$SHARDS"
    for kv in "$@" ${BROKER_PROPS:-}; do printf '%s\n' "$kv"; done
  } > "$d/broker.properties"
  HOME="$d/home" "$BIN_DIR/mqbroker" -c "$d/broker.properties" >"$d/broker.log" 2>&1 &
  BROKER_PID=$!
  BENCH_PIDS+=($BROKER_PID)
  wait_port "$BROKER_PORT" || { echo "mqbroker did not start (see $d/broker.log)" >&2; return 1; }
  sleep 1
}
