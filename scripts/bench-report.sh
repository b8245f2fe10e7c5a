#!/usr/bin/env bash
# THE command for the benchmark report (README "Benchmark report"):
#   scripts/bench-report.sh [OUT_DIR]          (default target/bench-report)
# Builds the release binaries, then for every cell of the matrix
#   flush  x  topology  x  message size  x  producers
#   FLUSHES="SYNC_FLUSH ASYNC_FLUSH"  TOPOLOGIES="single sync-master"  SIZES="128 4096"  PRODUCERS="1 64"
# starts a fresh nameserver + broker(s) on loopback and runs mqbench twice: closed loop (sync
# sends as fast as acknowledged, as upstream's benchmark does) and open loop at half the
# closed-loop throughput (latency from the intended send time). Writes every JSON, the plots,
# and report.md (one table) into OUT_DIR. A topology the broker cannot run (no HA listener for
# sync-master) is skipped with a note in the report. Env: DURATION (s, default 6), WARMUP (2),
# CONSUMERS (default 1; 0 = producers only, the workload of upstream's benchmark Producer),
# BROKER_PROPS (key=value properties for every broker, e.g. warmMapedFileEnable=true).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bench-lib.sh
OUT="${1:-$ROOT/target/bench-report}"
FLUSHES="${FLUSHES:-SYNC_FLUSH ASYNC_FLUSH}"
TOPOLOGIES="${TOPOLOGIES:-single sync-master}"
SIZES="${SIZES:-128 4096}"
PRODUCERS="${PRODUCERS:-1 64}"
DURATION="${DURATION:-6}"
WARMUP="${WARMUP:-2}"
CONSUMERS="${CONSUMERS:-1}"
[ "${SHARDMQ_SKIP_BUILD:-}" = 1 ] || cargo build --release --quiet --bin mqnamesrv --bin mqbroker --bin mqbench
trap bench_cleanup EXIT
rm -rf "$OUT"; mkdir -p "$OUT/plots"
NOTES=()
FILES=()
for FLUSH in $FLUSHES; do
  for TOPO in $TOPOLOGIES; do
    D="$OUT/run-$FLUSH-$TOPO"; mkdir -p "$D"
    start_namesrv "$D"
    case "$TOPO" in
      single) start_broker "$D/master" broker-a "$FLUSH" ASYNC_MASTER 0 ;;
      sync-master)
        start_broker "$D/master" broker-a "$FLUSH" SYNC_MASTER 0
        MPORT=$BROKER_PORT; MPID=$BROKER_PID
        if ! port_open $((MPORT + 1)); then
          NOTES+=("$FLUSH / sync-master: skipped, the broker has no HA listener on port $((MPORT + 1)) (replication not built yet)")
          bench_cleanup; rm -rf "$D"/*/store; continue
        fi
        start_broker "$D/slave" broker-a "$FLUSH" SLAVE 1 "haMasterAddress=127.0.0.1:$((MPORT + 1))"
        BROKER_PORT=$MPORT; BROKER_PID=$MPID
        ;;
      *) echo "unknown topology $TOPO" >&2; exit 2 ;;
    esac
    for SIZE in $SIZES; do
      for P in $PRODUCERS; do
        NAME="$FLUSH-$TOPO-${SIZE}B-${P}p"
        COMMON=(-n "127.0.0.1:$NS_PORT" --broker-pid "$BROKER_PID" --producers "$P"
          --consumers "$CONSUMERS"
          --threads $(( P > 1 ? 2 : 1 )) --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP"
          --topic "Bench_${SIZE}_$P" --queues 8 --plots "$OUT/plots" --quiet)
        echo "== $NAME closed loop" >&2
        target/release/mqbench run "${COMMON[@]}" --closed-loop --rate 0 \
          --label "$NAME-closed" --json "$OUT/$NAME-closed.json" > "$OUT/$NAME-closed.txt"
        RATE=$(python3 -c 'import json,sys; print(max(50, int(json.load(open(sys.argv[1]))["rate"]["acked_per_s"] * 0.5)))' "$OUT/$NAME-closed.json")
        echo "== $NAME open loop at $RATE/s" >&2
        target/release/mqbench run "${COMMON[@]}" --rate "$RATE" \
          --label "$NAME-open" --json "$OUT/$NAME-open.json" > "$OUT/$NAME-open.txt"
        FILES+=("$OUT/$NAME-closed.json" "$OUT/$NAME-open.json")
      done
    done
    bench_cleanup
    rm -rf "$D"/*/store   # commit-log files are preallocated: do not fill the disk
  done
done
target/release/mqbench report --out "$OUT" --title "shardmq $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(date -u +%F)" "${FILES[@]}" > /dev/null
{
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)."
  python3 - "$OUT" "${FILES[0]}" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[2]))
f = (r.get("limits") or {}).get("fsync") or {}
s = f.get("write_fdatasync_4k_us") or {}
t = (r.get("limits") or {}).get("loopback_rtt_us") or {}
print("Host limits: 4 KiB %s write+fdatasync p50 %.3f ms p99 %.3f ms (%s on %s); loopback TCP RTT p50 %d µs p99 %d µs." % (
    "O_DIRECT" if f.get("o_direct") else "buffered", s.get("p50", 0) / 1000, s.get("p99", 0) / 1000,
    r["environment"].get("filesystem"), r["environment"].get("device"), t.get("p50", 0), t.get("p99", 0)))
w = (r.get("limits") or {}).get("busy_device_wake") or {}
if w:
    l = w.get("late_us") or {}
    print("Busy host (every core spinning at lowest priority, 64 KiB O_DSYNC writes at %.0f MiB/s): a 1 ms sleep "
          "woke late by p50 %d µs, p99 %.1f ms, max %.1f ms; %.1f wake-ups a second 5 ms or more late; steal %s. "
          "A run that saturates the cores while the store writes meets the same stalls." % (
        w.get("write_mib_s", 0), l.get("p50", 0), l.get("p99", 0) / 1000, l.get("max", 0) / 1000,
        w.get("late_5ms_per_s", 0), "%.1f %%" % w["steal_pct"] if w.get("steal_pct") is not None else "unknown"))
e = r["environment"]
if e.get("store_disk_used_percent", 0) >= 75:
    print("Warning: the store's filesystem was %d%% full (options %s): over a broker's diskMaxUsedSpaceRatio "
          "(75 by default) retention deleted commit-log files during the runs (ARCHITECTURE 15b, 15d)."
          % (e["store_disk_used_percent"], e.get("mount_options", "")))
PYEOF
  [ -z "${BROKER_PROPS:-}" ] || echo "Broker properties added to every broker: \`$BROKER_PROPS\`."
  for n in "${NOTES[@]}"; do echo "- $n"; done
} >> "$OUT/report.md"
cat "$OUT/report.md"
