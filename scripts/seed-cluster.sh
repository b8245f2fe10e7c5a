#!/usr/bin/env bash
# Starts the install guide's cluster on ONE machine, loopback addresses standing for its hosts:
#
#   scripts/seed-cluster.sh start [LAYOUT] [DIR]     (default: 2m-2s-sync, target/seed-cluster)
#   scripts/seed-cluster.sh stop  [LAYOUT] [DIR]     (clean stop: SIGTERM, like mqshutdown)
#   scripts/seed-cluster.sh print [LAYOUT] [DIR]     (the command lines, not run)
#
# Layout 2m-2s-sync (the seed install, conf/2m-2s-sync/*.properties used UNCHANGED):
#   nameservers 127.0.0.57:9876 and 127.0.0.58:9876
#   broker-a master 127.0.0.57:10911 (VIP 10909, HA 10912)   broker-a.properties
#   broker-a slave  127.0.0.57:10920 (VIP 10918, HA 10921)   broker-a-s.properties
#   broker-b master 127.0.0.58:10911, slave 127.0.0.58:10920 broker-b(-s).properties
#   broker-b slave2 127.0.0.59:10920                         broker-c-s.properties
# Layouts 2m-2s-async and 2m-noslave (upstream's files: no listenPort, so every broker uses
# 10911 on its own address): broker-a 127.0.0.57, broker-b 127.0.0.58, broker-a-s 127.0.0.60,
# broker-b-s 127.0.0.61.
#
# What differs from the original hosts is given on the command line, never by editing a file:
#   -n "127.0.0.57:9876;127.0.0.58:9876"           the nameserver list
#   --set brokerIP1=H --set brokerIP2=H --set bindAddress=H   the host's address (advertised
#                                                  to clients, advertised for HA, bound)
#   --set storePathRootDir=D --set storePathCommitLog=D/commitlog ... abortFile=D/abort
#                                                  the store moved into a scratch directory
# Environment: BIN (binaries, default target/release), SHARDMQ_SEED_EXTRA (more mqbroker args).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-start}"
LAYOUT="${2:-2m-2s-sync}"
DIR="${3:-$ROOT/target/seed-cluster}"
BIN="${BIN:-$ROOT/target/release}"
CONF="$ROOT/conf/$LAYOUT"
NAMESRV="127.0.0.57:9876;127.0.0.58:9876"

# name file ip
case "$LAYOUT" in
  2m-2s-sync) BROKERS=(
      "broker-a broker-a.properties 127.0.0.57"
      "broker-b broker-b.properties 127.0.0.58"
      "broker-a-s broker-a-s.properties 127.0.0.57"
      "broker-b-s broker-b-s.properties 127.0.0.58"
      "broker-c-s broker-c-s.properties 127.0.0.59") ;;
  2m-2s-async) BROKERS=(
      "broker-a broker-a.properties 127.0.0.57"
      "broker-b broker-b.properties 127.0.0.58"
      "broker-a-s broker-a-s.properties 127.0.0.60"
      "broker-b-s broker-b-s.properties 127.0.0.61") ;;
  2m-noslave) BROKERS=(
      "broker-a broker-a.properties 127.0.0.57"
      "broker-b broker-b.properties 127.0.0.58") ;;
  *) echo "unknown layout $LAYOUT (2m-2s-sync, 2m-2s-async, 2m-noslave)" >&2; exit 2 ;;
esac

broker_args() { # name file ip
  local d="$DIR/$1"
  echo "-c $CONF/$2 -n $NAMESRV --set brokerIP1=$3 --set brokerIP2=$3 --set bindAddress=$3" \
    "--set storePathRootDir=$d --set storePathCommitLog=$d/commitlog" \
    "--set storePathConsumeQueue=$d/consumequeue --set storePathIndex=$d/index" \
    "--set storeCheckpoint=$d/checkpoint --set abortFile=$d/abort ${SHARDMQ_SEED_EXTRA:-}"
}

port_of() { # file -> listenPort (10911 when the file has none)
  local p
  p=$(grep -E '^\s*listenPort\s*=' "$CONF/$1" | tail -1 | sed 's/.*=\s*//' | tr -d '[:space:]' || true)
  echo "${p:-10911}"
}

wait_port() { # ip port
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1:$2 never opened (see $DIR/logs)" >&2
  return 1
}

start_one() { # name exe args...
  local name="$1"; shift
  mkdir -p "$DIR/logs" "$DIR/home"
  HOME="$DIR/home" SHARDMQ_LOG_DIR="$DIR/logs/$name" nohup "$@" >>"$DIR/logs/$name.out" 2>&1 &
  echo $! > "$DIR/$name.pid"
}

case "$CMD" in
  print)
    for b in "${BROKERS[@]}"; do set -- $b; echo "mqbroker $(broker_args "$1" "$2" "$3")"; done ;;
  start)
    [ -x "$BIN/mqbroker" ] || (cd "$ROOT" && cargo build --release --quiet --bin mqnamesrv --bin mqbroker)
    mkdir -p "$DIR"
    for ip in 127.0.0.57 127.0.0.58; do
      mkdir -p "$DIR/namesrv-$ip"
      printf 'listenPort=9876\nbindAddress=%s\nkvConfigPath=%s/namesrv-%s/kvConfig.json\n' \
        "$ip" "$DIR" "$ip" > "$DIR/namesrv-$ip/namesrv.properties"
      start_one "namesrv-$ip" "$BIN/mqnamesrv" -c "$DIR/namesrv-$ip/namesrv.properties"
    done
    wait_port 127.0.0.57 9876; wait_port 127.0.0.58 9876
    for b in "${BROKERS[@]}"; do
      set -- $b
      # shellcheck disable=SC2046
      start_one "$1" "$BIN/mqbroker" $(broker_args "$1" "$2" "$3")
      wait_port "$3" "$(port_of "$2")"
    done
    echo "cluster $LAYOUT up; nameservers $NAMESRV; data and logs in $DIR" ;;
  stop)
    # Brokers first (they unregister from the nameservers), then the nameservers; each is
    # waited for (30 s at most, then reported), so a following start finds its ports free.
    for f in $(ls "$DIR"/*.pid 2>/dev/null | grep -v '/namesrv-') $(ls "$DIR"/namesrv-*.pid 2>/dev/null); do
      pid=$(cat "$f")
      kill -TERM "$pid" 2>/dev/null || { rm -f "$f"; continue; }
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "$(basename "$f" .pid) (pid $pid) did not stop within 30 s (see $DIR/logs)" >&2
      else
        rm -f "$f"
      fi
    done
    echo "cluster $LAYOUT stopped" ;;
  *) echo "usage: $0 start|stop|print [LAYOUT] [DIR]" >&2; exit 2 ;;
esac
