#!/usr/bin/env bash
# Side-by-side: etcd 3.4 (Debian's etcd-server) and keel, single member each,
# same machine, same disk, same client (keel-bench), same run. Prints a table
# of keel/etcd throughput ratios and p99 latencies.
#
# usage: bench/compare.sh [--total N] [--clients "1 16 256"] [--val-size B] [--quick] [--no-build]
#                         [--workloads "put watch lease"]
# Bounded: every run is --total requests (default 20000; --quick: 3000).
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=20000
CLIENTS="1 16 256"
VAL_SIZE=256
KEY_SIZE=16
BUILD=1
WORKLOADS="put"
while [ $# -gt 0 ]; do
  case "$1" in
    --total) TOTAL="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --val-size) VAL_SIZE="$2"; shift 2 ;;
    --quick) TOTAL=3000; shift ;;
    --no-build) BUILD=0; shift ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
[ "$BUILD" = 0 ] || cargo build --release -q -p keel-server -p keel-bench
TARGET_DIR=${CARGO_TARGET_DIR:-target}
KEEL=$TARGET_DIR/release/keel
BENCH=$TARGET_DIR/release/keel-bench
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-compare.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

start() { # name binary -> sets PORT
  local name=$1 bin=$2
  PORT=$(free_port); local peer; peer=$(free_port)
  "$bin" --name "$name" --data-dir "$WORK/$name.data" \
    --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$name=http://127.0.0.1:$peer" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$PORT" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "$name did not start; log:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

start etcd etcd; ETCD_PORT=$PORT
start keel "$KEEL"; KEEL_PORT=$PORT

ratio() { python3 -c "print('%.2fx' % ($1 / $2))"; }

run() { # port clients -> "rps p50_ms p99_ms errors"
  local port=$1 clients=$2 conns
  conns=$(( clients < 16 ? clients : 16 ))
  "$BENCH" --endpoints "127.0.0.1:$port" --clients "$clients" --conns "$conns" --json \
    put --total "$TOTAL" --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size 100000 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); p=r["percentiles_secs"]; print("%.0f %.2f %.2f %d" % (r["requests_per_sec"], p["p50"]*1e3, p["p99"]*1e3, r["errors"]))'
}

put_table() {
  echo "put: key ${KEY_SIZE} B, value ${VAL_SIZE} B, ${TOTAL} requests per run, $(nproc) cores, $(uname -r)"
  printf "%-8s | %12s %8s %8s | %12s %8s %8s | %10s\n" clients "etcd req/s" "p50 ms" "p99 ms" "keel req/s" "p50 ms" "p99 ms" "keel/etcd"
  for c in $CLIENTS; do
    read -r e_rps e_p50 e_p99 e_err < <(run "$ETCD_PORT" "$c")
    read -r k_rps k_p50 k_p99 k_err < <(run "$KEEL_PORT" "$c")
    printf "%-8s | %12s %8s %8s | %12s %8s %8s | %10s\n" "$c" "$e_rps" "$e_p50" "$e_p99" "$k_rps" "$k_p50" "$k_p99" "$(ratio "$k_rps" "$e_rps")"
    [ "$e_err" = 0 ] && [ "$k_err" = 0 ] || echo "  (errors: etcd $e_err, keel $k_err)"
  done
}

watch_run() { # port watchers -> "p50_ms p99_ms errors"
  local port=$1 watchers=$2 streams
  streams=$(( watchers < 10 ? watchers : 10 ))
  "$BENCH" --endpoints "127.0.0.1:$port" --conns "$streams" --json \
    watch-latency --watchers "$watchers" --streams "$streams" --put-total 200 --put-rate 100 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); p=r["percentiles_secs"]; print("%.3f %.3f %d" % (p["p50"]*1e3, p["p99"]*1e3, r["errors"]))'
}

watch_table() {
  echo
  echo "put -> watch event latency: 200 puts at 100/s, watchers on one key over <= 10 streams"
  printf "%-9s | %9s %9s | %9s %9s | %14s\n" watchers "etcd p50" "p99 ms" "keel p50" "p99 ms" "p50 keel/etcd"
  for w in 1 1000; do
    read -r e_p50 e_p99 e_err < <(watch_run "$ETCD_PORT" "$w")
    read -r k_p50 k_p99 k_err < <(watch_run "$KEEL_PORT" "$w")
    printf "%-9s | %9s %9s | %9s %9s | %14s\n" "$w" "$e_p50" "$e_p99" "$k_p50" "$k_p99" "$(ratio "$k_p50" "$e_p50")"
    [ "$e_err" = 0 ] && [ "$k_err" = 0 ] || echo "  (errors: etcd $e_err, keel $k_err)"
  done
}

lease_run() { # port clients -> "rps errors"
  local port=$1 clients=$2
  "$BENCH" --endpoints "127.0.0.1:$port" --clients "$clients" --conns "$(( clients < 16 ? clients : 16 ))" --json \
    lease-keepalive --total "$TOTAL" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %d" % (r["requests_per_sec"], r["errors"]))'
}

lease_table() {
  echo
  echo "lease keep-alive: ${TOTAL} requests, one lease and stream per client"
  printf "%-8s | %12s | %12s | %10s\n" clients "etcd req/s" "keel req/s" "keel/etcd"
  for c in 1 64; do
    read -r e_rps e_err < <(lease_run "$ETCD_PORT" "$c")
    read -r k_rps k_err < <(lease_run "$KEEL_PORT" "$c")
    printf "%-8s | %12s | %12s | %10s\n" "$c" "$e_rps" "$k_rps" "$(ratio "$k_rps" "$e_rps")"
    [ "$e_err" = 0 ] && [ "$k_err" = 0 ] || echo "  (errors: etcd $e_err, keel $k_err)"
  done
}

for w in $WORKLOADS; do
  case "$w" in
    put) put_table ;;
    watch) watch_table ;;
    lease) lease_table ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
done
