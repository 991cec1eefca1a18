#!/usr/bin/env bash
# Where a server's CPU time goes under one keel-bench test, as flame graphs (one SVG per server;
# the bottom frame of every stack is the thread's name: keel-core, keel-edge, keel-checkpoint,
# noop-edge, ...). Samples the server process only (not keel-bench) with perf's DWARF unwinding
# (release builds carry line tables), folds the stacks with inferno.
#
# usage: bench/flamegraph.sh [--servers "keel noop"] [--test put-256|put-64|put-1|range-s-64]
#                            [--total N] [--freq HZ] [--out DIR] [--data-dir DIR] [--no-build]
#                            [--keel-flags "..."]
#   --servers  keel, noop (keel-noop-server: stock tonic answering at once, the gRPC part alone)
#              and/or etcd (Go frames; its DWARF stacks are shallower); default "keel noop".
#   --test     keel-bench's test, with compare.sh's arguments (default put-256).
#   --total    requests of the sampled run (default 40000); a warm-up run of 3000 comes first.
#   --freq     samples per second per thread (default 499).
#   --out      where the SVGs and folded stacks go (default ./flamegraphs):
#              flame-<server>-<test>.svg and .folded (text: one stack per line, with its count;
#              grep it for exact shares).
# Needs perf (linux-perf) and inferno (`cargo install inferno`). Bounded: one keel-bench run of
# --total requests (10 s timeout per request) plus perf's sampling of it; the server is
# started on a free loopback port with a fresh data dir and stopped by PID.
set -euo pipefail

SERVERS="keel noop"
TEST=put-256
TOTAL=40000
FREQ=499
OUT=./flamegraphs
DATA_PARENT=${TMPDIR:-/tmp}
BUILD=1
KEEL_FLAGS=""
while [ $# -gt 0 ]; do
  case $1 in
    --servers) SERVERS=$2; shift 2 ;;
    --test) TEST=$2; shift 2 ;;
    --total) TOTAL=$2; shift 2 ;;
    --freq) FREQ=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --data-dir) DATA_PARENT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keel-flags) KEEL_FLAGS=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "$tool not found (perf: apt-get install linux-perf; inferno: cargo install inferno)" >&2; exit 1; }
done
case $TEST in
  put-1) ARGS="--clients 1 --conns 1 put --total $TOTAL --key-size 16 --val-size 256 --key-space-size 100000" ;;
  put-64) ARGS="--clients 64 --conns 16 put --total $TOTAL --key-size 16 --val-size 256 --key-space-size 100000" ;;
  put-256) ARGS="--clients 256 --conns 16 put --total $TOTAL --key-size 16 --val-size 256 --key-space-size 100000" ;;
  range-s-64) ARGS="--clients 64 --conns 16 range bench-range-key --consistency s --total $TOTAL" ;;
  *) echo "unknown --test $TEST" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
[ "$BUILD" = 0 ] || cargo build --release -q -p keel-server -p keel-bench --bins
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH=$TARGET_DIR/release/keel-bench
mkdir -p "$OUT"
WORK=$(mktemp -d "$DATA_PARENT/keel-flame.XXXXXX")
SERVER_PID=""
cleanup() {
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for server in $SERVERS; do
  port=$(free_port)
  peer=$(free_port)
  url=http://127.0.0.1:$port
  case $server in
    keel)
      # shellcheck disable=SC2086 # --keel-flags is a list of flags
      "$TARGET_DIR/release/keel" --data-dir "$WORK/keel" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$peer" $KEEL_FLAGS \
        >"$WORK/keel.log" 2>&1 &
      ;;
    etcd)
      etcd --data-dir "$WORK/etcd" --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "http://127.0.0.1:$peer" >"$WORK/etcd.log" 2>&1 &
      ;;
    noop) "$TARGET_DIR/release/keel-noop-server" "127.0.0.1:$port" >"$WORK/noop.log" 2>&1 & ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  if [ "$TEST" = range-s-64 ] && [ "$server" != noop ]; then
    "$BENCH" --endpoints "127.0.0.1:$port" put --total 1 --key-size 15 --val-size 256 >/dev/null
  fi
  "$BENCH" --endpoints "127.0.0.1:$port" --clients 64 --conns 16 put --total 3000 --key-size 16 \
    --val-size 256 --key-space-size 100000 >/dev/null
  perf record -F "$FREQ" --call-graph dwarf,16384 -p "$SERVER_PID" -o "$WORK/perf.data" \
    >"$WORK/perf.log" 2>&1 &
  perf_pid=$!
  sleep 0.5
  # shellcheck disable=SC2086 # the test's arguments are a list
  "$BENCH" --endpoints "127.0.0.1:$port" $ARGS | grep -E "Requests/sec|Average"
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  folded=$OUT/flame-$server-$TEST.folded
  perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$folded"
  inferno-flamegraph --title "$server, keel-bench $TEST ($TOTAL requests): server CPU by thread" \
    --minwidth 0.2 <"$folded" >"$OUT/flame-$server-$TEST.svg"
  samples=$(awk '{s += $NF} END {print s}' "$folded")
  echo "$server: $samples samples -> $OUT/flame-$server-$TEST.svg"
  # Share of samples per thread (the first frame of each folded stack).
  awk -v total="$samples" '{n = $NF; split($0, f, ";"); t[f[1]] += n}
    END {for (k in t) printf "  %-20s %5.1f%%\n", k, 100 * t[k] / total}' "$folded" | sort -k2 -rn
  rm -f "$WORK/perf.data"
  rm -rf "$WORK/keel" "$WORK/etcd"
done
