#!/usr/bin/env bash
# Side by side: etcd 3.4 (Debian's etcd-server) and keel, started with the same flags on
# loopback (one member each, or three each with --members 3), same machine, same disk, same
# client (keel-bench), same matrix. For every test it runs etcd then keel, and prints a
# Markdown table per repetition with both sides' req/s, p50 and p99 and the keel/etcd ratios.
#
# usage: bench/compare.sh [--members 1|3] [--total N] [--quick] [--runs N] [--no-build]
#                         [--tests "put-1 put-64 put-256 range-s-64 txn-put txn-mixed
#                                   watch-latency-1 watch-latency-1000 watch lease"]
#                         [--plot-dir DIR] [--data-dir DIR] [--keep-logs] [--noop] [--floor]
#                         [--keel-flags "..."] [--etcd-flags "..."]
#   --members    1 (default) or 3 members per system; with 3, keel-bench spreads its
#                connections over all three client URLs (etcd's "all members" setup).
#   --total      requests per throughput test (default 10000; --quick: 2000). Watch tests
#                put --total/50 values (at least 100): watch-latency-N at 100/s to N
#                watchers, watch unpaced to 1000 watchers of one key (events/s is its req/s).
#                txn-mixed runs --total/5 txns (each read counts every key: slow on both).
#   --runs       repetitions of the whole matrix (default 2: the box is noisy).
#   --plot-dir   also save keel-bench's --plot PNG of every run there.
#   --data-dir   where the members' data directories go (default: a new temporary directory
#                under ${TMPDIR:-/tmp}; use a real disk, not tmpfs, or fsync costs nothing).
#   --keel-flags, --etcd-flags
#                extra flags for every member of one side (e.g. --keel-flags
#                "--storage-io std" or "--unsafe-no-fsync"), for the measurements in
#                docs/tuning.md.
#   --noop       also measure keel-noop-server (tonic answering Put/Range at once, no storage)
#                in the put and range tests: the ceiling any tonic server reaches here with this
#                client; its column is noop/etcd. One member only.
#   --floor      after the runs, the one-client floor in the same run (one member, needs put-1
#                in --tests): the gRPC round trip with no storage (keel-noop-server, put-1 p50)
#                plus one WAL append (entry + hard state, keel's default WAL settings) at queue
#                depth 1 on the --data-dir disk (keel-wal's fsync_latency example, case
#                $FLOOR_CASE, default wal-std/zeroed), next to the put-1 p50s of the runs: how
#                far each server is above what any server with one sync per write can reach.
# Besides req/s and latency, every row shows the CPU time (user + system) per request that the
# etcd members, the keel members and keel-bench itself used during the test: on this box the
# client and the servers share two cores, so these say where a ratio comes from (the client's
# figure includes its start-up: connecting, allocating histograms; small at the default --total).
# Bounded: every test is a bounded keel-bench run (--total requests, each with a 10 s
# timeout); members are killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MEMBERS=1
TOTAL=10000
RUNS=2
BUILD=1
PLOT_DIR=""
DATA_ROOT=""
KEEP_LOGS=0
NOOP=0
FLOOR=0
FLOOR_CASE=${FLOOR_CASE:-wal-std/zeroed}
KEEL_FLAGS=""
ETCD_FLAGS=""
TESTS="put-1 put-64 put-256 range-s-64 txn-put txn-mixed watch-latency-1 watch-latency-1000 watch lease"
KEY_SIZE=16
VAL_SIZE=256
KEY_SPACE=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS="$2"; shift 2 ;;
    --total) TOTAL="$2"; shift 2 ;;
    --quick) TOTAL=2000; shift ;;
    --runs) RUNS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --tests) TESTS="$2"; shift 2 ;;
    --plot-dir) PLOT_DIR="$2"; shift 2 ;;
    --data-dir) DATA_ROOT="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --noop) NOOP=1; shift ;;
    --floor) FLOOR=1; shift ;;
    --keel-flags) KEEL_FLAGS="$2"; shift 2 ;;
    --etcd-flags) ETCD_FLAGS="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$MEMBERS" in 1|3) ;; *) echo "--members must be 1 or 3" >&2; exit 2 ;; esac
if [ "$NOOP" = 1 ] && [ "$MEMBERS" != 1 ]; then echo "--noop needs --members 1" >&2; exit 2; fi
if [ "$FLOOR" = 1 ]; then
  [ "$MEMBERS" = 1 ] || { echo "--floor needs --members 1" >&2; exit 2; }
  case " $TESTS " in *" put-1 "*) ;; *) echo "--floor needs put-1 in --tests" >&2; exit 2 ;; esac
fi

command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "etcdctl is not installed (apt-get install etcd-client)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to read keel-bench's JSON" >&2; exit 1; }
[ "$BUILD" = 0 ] || cargo build --release -q -p keel-server -p keel-bench --bins
[ "$BUILD" = 0 ] || [ "$FLOOR" = 0 ] || cargo build --release -q -p keel-wal --example fsync_latency
TARGET_DIR=${CARGO_TARGET_DIR:-target}
KEEL=$TARGET_DIR/release/keel
BENCH=$TARGET_DIR/release/keel-bench
[ -x "$KEEL" ] && [ -x "$BENCH" ] || { echo "missing $KEEL or $BENCH (build them or drop --no-build)" >&2; exit 1; }
if [ -n "$PLOT_DIR" ]; then mkdir -p "$PLOT_DIR"; fi
WORK=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/keel-compare.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP_LOGS" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_cluster SYSTEM BINARY EXTRA_FLAGS: starts $MEMBERS members with etcd's flags; sets ENDPOINTS
# (comma separated client URLs) and FIRST (the first member's client URL).
start_cluster() {
  local system=$1 bin=$2 extra=$3 i initial="" ports=() peers=()
  for i in $(seq 1 "$MEMBERS"); do
    ports+=("$(free_port)"); peers+=("$(free_port)")
    initial+="${initial:+,}$system-$i=http://127.0.0.1:${peers[$((i-1))]}"
  done
  ENDPOINTS=""
  for i in $(seq 1 "$MEMBERS"); do
    local name=$system-$i port=${ports[$((i-1))]} peer=${peers[$((i-1))]}
    # shellcheck disable=SC2086 # the extra flags are split into words on purpose
    "$bin" --name "$name" --data-dir "$WORK/$name.data" $extra \
      --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$initial" --initial-cluster-token "compare-$system" \
      --initial-cluster-state new >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:$port"
  done
  FIRST=127.0.0.1:${ports[0]}
  # Healthy = this member answers a linearizable read: the cluster has a leader.
  local tries
  for i in $(seq 1 "$MEMBERS"); do
    for tries in $(seq 1 400); do
      ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:${ports[$((i-1))]}" endpoint health >/dev/null 2>&1 && break
      if [ "$tries" = 400 ]; then
        echo "$system-$i did not become healthy in 20 s; log:" >&2; cat "$WORK/$system-$i.log" >&2; exit 1
      fi
      sleep 0.05
    done
  done
}

start_cluster etcd etcd "$ETCD_FLAGS"; ETCD_ENDPOINTS=$ENDPOINTS; ETCD_FIRST=$FIRST
ETCD_PIDS="${PIDS[*]}"
start_cluster keel "$KEEL" "$KEEL_FLAGS"; KEEL_ENDPOINTS=$ENDPOINTS; KEEL_FIRST=$FIRST
KEEL_PIDS="${PIDS[*]:$MEMBERS}"
if [ "$NOOP" = 1 ] || [ "$FLOOR" = 1 ]; then
  NOOP_PORT=$(free_port)
  "$TARGET_DIR/release/keel-noop-server" "127.0.0.1:$NOOP_PORT" >"$WORK/noop.log" 2>&1 &
  PIDS+=($!)
  NOOP_PIDS=$!
  NOOP_ENDPOINTS=127.0.0.1:$NOOP_PORT
fi
for first in "$ETCD_FIRST" "$KEEL_FIRST"; do
  ETCDCTL_API=3 etcdctl --endpoints "$first" put bench-range-key "$(head -c "$VAL_SIZE" /dev/zero | tr '\0' v)" >/dev/null
done

WATCH_PUTS=$(( TOTAL / 50 < 100 ? 100 : TOTAL / 50 ))
conns_for() { local c=$1; echo $(( c < 16 ? (c < MEMBERS ? MEMBERS : c) : 16 )); }

# test_args TEST -> the keel-bench arguments (global flags, subcommand, its flags)
test_args() {
  case "$1" in
    put-*) local c=${1#put-}
      echo "--clients $c --conns $(conns_for "$c") put --total $TOTAL --key-size $KEY_SIZE --val-size $VAL_SIZE --key-space-size $KEY_SPACE" ;;
    range-s-*) local c=${1#range-s-}
      echo "--clients $c --conns $(conns_for "$c") range bench-range-key --consistency s --total $TOTAL" ;;
    range-l-*) local c=${1#range-l-}
      echo "--clients $c --conns $(conns_for "$c") range bench-range-key --consistency l --total $TOTAL" ;;
    txn-put)
      echo "--clients 64 --conns 16 txn-put --txn-ops 4 --total $TOTAL --key-size $KEY_SIZE --val-size $VAL_SIZE --key-space-size $KEY_SPACE" ;;
    txn-mixed)
      echo "--clients 64 --conns 16 txn-mixed --rw-ratio 1 --limit 10 --consistency s --total $(( TOTAL / 5 )) --key-size $KEY_SIZE --val-size $VAL_SIZE --key-space-size $KEY_SPACE" ;;
    watch-latency-*) local w=${1#watch-latency-} s
      s=$(( w < 10 ? w : 10 ))
      echo "--conns $s watch-latency --watchers $w --streams $s --put-total $WATCH_PUTS --put-rate 100" ;;
    watch)
      echo "--clients 1 --conns 10 watch --streams 10 --watch-per-stream 100 --put-total $WATCH_PUTS" ;;
    lease)
      echo "--clients 64 --conns 16 lease-keepalive --total $TOTAL" ;;
    *) echo "unknown test $1" >&2; return 2 ;;
  esac
}

# measure SYSTEM ENDPOINTS TEST RUN -> "req/s p50_ms p99_ms errors server_us client_us" of the
# test's headline; server_us and client_us are CPU time (user + system) per request of the
# members (all of them, from /proc/PID/stat around the run) and of keel-bench (its rusage).
measure() {
  local system=$1 endpoints=$2 test=$3 run=$4 plot=() pids
  case "$system" in etcd) pids=$ETCD_PIDS ;; keel) pids=$KEEL_PIDS ;; *) pids=$NOOP_PIDS ;; esac
  if [ -n "$PLOT_DIR" ]; then plot=(--plot "$PLOT_DIR/m$MEMBERS-$test-$system-run$run.png"); fi
  # shellcheck disable=SC2046 # test_args is split into words on purpose
  python3 - "$pids" "$BENCH" --endpoints "$endpoints" --json "${plot[@]}" $(test_args "$test") <<'PY'
import json, os, resource, subprocess, sys
pids = sys.argv[1].split()
tick = os.sysconf("SC_CLK_TCK")
def server_cpu():
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
before = server_cpu()
out = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, check=True).stdout
server = server_cpu() - before
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
r = json.loads(out)
p = r["percentiles_secs"]
n = max(r["requests"], 1)
print("%.0f %.3f %.3f %d %.1f %.1f" % (r["requests_per_sec"], p["p50"] * 1e3, p["p99"] * 1e3,
      r["errors"], server / n * 1e6, (usage.ru_utime + usage.ru_stime) / n * 1e6))
PY
}

FLOOR_P50S=()
ratio() {
  python3 -c "
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print('%.2f' % (a / b) if b > 0 else '-')
except ValueError:
    print('-')" "$1" "$2"
}

echo "# keel vs etcd $(etcd --version | head -1 | awk '{print $3}'), $MEMBERS member(s) each, loopback"
echo
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r),"
echo "data on $(df -T "$WORK" | awk 'NR==2 {print $2 " (" $1 ")"}'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "extra flags: keel [${KEEL_FLAGS}], etcd [${ETCD_FLAGS}]"
echo "key ${KEY_SIZE} B, value ${VAL_SIZE} B, key space ${KEY_SPACE}, --total ${TOTAL}; watch tests: ${WATCH_PUTS} puts"
for run in $(seq 1 "$RUNS"); do
  echo
  echo "## run $run of $RUNS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  noop_head="" noop_line=""
  if [ "$NOOP" = 1 ]; then noop_head=" noop req/s | req/s noop/etcd | noop CPU µs/req |"; noop_line="---:|---:|---:|"; fi
  echo "| test | etcd req/s | etcd p50 ms | etcd p99 ms | keel req/s | keel p50 ms | keel p99 ms | req/s keel/etcd | p99 keel/etcd | CPU µs/req etcd / keel / client (etcd, keel runs) |$noop_head"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|$noop_line"
  for t in $TESTS; do
    test_args "$t" >/dev/null
    # A failed run (keel-bench exits non-zero) is shown as "-" and "failed"; the rest goes on.
    e_out=$(measure etcd "$ETCD_ENDPOINTS" "$t" "$run") || e_out="- - - failed - -"
    k_out=$(measure keel "$KEEL_ENDPOINTS" "$t" "$run") || k_out="- - - failed - -"
    read -r e_rps e_p50 e_p99 e_err e_cpu e_client <<<"$e_out"
    read -r k_rps k_p50 k_p99 k_err k_cpu k_client <<<"$k_out"
    note=""
    [ "$e_err" = 0 ] && [ "$k_err" = 0 ] || note=" (errors: etcd $e_err, keel $k_err)"
    noop_cells=""
    if [ "$NOOP" = 1 ]; then
      case "$t" in
        put-*|range-s-*)
          n_out=$(measure noop "$NOOP_ENDPOINTS" "$t" "$run") || n_out="- - - failed - -"
          read -r n_rps _ _ _ n_cpu _ <<<"$n_out"
          noop_cells=" $n_rps | $(ratio "$n_rps" "$e_rps") | $n_cpu |" ;;
        *) noop_cells=" - | - | - |" ;;
      esac
    fi
    echo "| $t$note | $e_rps | $e_p50 | $e_p99 | $k_rps | $k_p50 | $k_p99 | $(ratio "$k_rps" "$e_rps") | $(ratio "$k_p99" "$e_p99") | $e_cpu / $k_cpu / $e_client, $k_client |$noop_cells"
    if [ "$t" = put-1 ]; then FLOOR_P50S+=("$e_p50 $k_p50"); fi
  done
done
if [ "$FLOOR" = 1 ]; then
  echo
  echo "## put-1 floor (same machine, same disk, after the runs; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  rtts=()
  for run in $(seq 1 "$RUNS"); do
    n_out=$(measure noop "$NOOP_ENDPOINTS" put-1 "floor$run") || n_out="- - - failed - -"
    read -r _ n_p50 _ _ _ _ <<<"$n_out"
    rtts+=("$n_p50")
  done
  FSYNC_BIN=$TARGET_DIR/release/examples/fsync_latency
  [ -x "$FSYNC_BIN" ] || { echo "missing $FSYNC_BIN (build it or drop --no-build)" >&2; exit 1; }
  # "case p50 p90 p99 mean" in µs, one line per case.
  wal_p50=$("$FSYNC_BIN" "$WORK" 1000 | awk -v c="$FLOOR_CASE" '$1 == c {print $3 / 1000}')
  [ -n "$wal_p50" ] || { echo "fsync_latency printed no case $FLOOR_CASE" >&2; exit 1; }
  python3 - "$wal_p50" "$FLOOR_CASE" "${rtts[*]}" "${FLOOR_P50S[@]}" <<'PY'
import statistics, sys
wal = float(sys.argv[1]); case = sys.argv[2]
rtts = [float(x) for x in sys.argv[3].split() if x != "-"]
runs = [tuple(float(v) for v in pair.split()) for pair in sys.argv[4:] if "-" not in pair.split()]
rtt = statistics.median(rtts) if rtts else float("nan")
floor = rtt + wal
print("| part | p50 ms |")
print("|---|---:|")
print("| gRPC round trip, no storage (keel-noop-server, put-1; median of %d) | %.3f |" % (len(rtts), rtt))
print("| one WAL append + sync at queue depth 1 on this disk (`%s`) | %.3f |" % (case, wal))
print("| **floor** (one round trip + one sync) | **%.3f** |" % floor)
for i, (e, k) in enumerate(runs, 1):
    print("| run %d: etcd %.3f (%.2fx the floor), keel %.3f (%.2fx, %+.3f ms above it); etcd/keel | %.2f |"
          % (i, e, e / floor, k, k / floor, k - floor, e / k))
if runs:
    best = statistics.median(e for e, _ in runs) / floor
    print()
    print("A server with no cost beyond the floor would reach %.2fx etcd's put-1 p50 here "
          "(the median etcd p50 over the floor)." % best)
PY
fi
echo
echo "test arguments (keel-bench --endpoints <all members> --json ...):"
for t in $TESTS; do echo "  $t: $(test_args "$t")"; done
[ -z "$PLOT_DIR" ] || echo "plots: $PLOT_DIR/m$MEMBERS-<test>-<etcd|keel>-run<N>.png"
