#!/usr/bin/env bash
# Storage measurements of keel against etcd 3.4 (Debian's etcd-server), one
# member each, same machine, same disk, same flags, same clients:
#
#   restart  restart time of a store of RESTART_KEYS distinct keys: after a
#            kill -9 right at the end of the load (the WAL tail matters), and
#            after a SIGTERM; time from process start to the first answered
#            linearizable read of a key written last.
#   defrag   put latency during `etcdctl defrag` of a store of >= 1 GiB
#            (DEFRAG_KEYS x 1 KiB values, half of them deleted, compacted).
#   compact  put latency during `etcdctl compact REV --physical` after
#            COMPACT_REVS puts over COMPACT_KEYSPACE keys, and the same put run
#            without compaction as the baseline.
#
# usage: bench/storage-compare.sh [--quick] [--no-build] [--only "restart defrag compact"]
#                                 [--servers "etcd keel"] [--keep-results DIR]
#
# Clients: keel-bench for every load (fixed --rate during defrag/compaction,
# whole-run percentiles), plus a small open-loop probe of our own (Python,
# grpcio, etcd's protos) that records every request's scheduled time and
# latency, so the percentiles over exactly the defrag/compaction window can be
# computed. The same probe polls for the first answered read after a restart.
# The probe's Python packages (grpcio, grpcio-tools) live in a venv under
# ${XDG_CACHE_HOME:-~/.cache}/keel-storage-compare-venv, created on first use.
#
# Bounded: every load is a fixed --total; every wait has a deadline; the
# servers listen on 127.0.0.1 on free ports; data lives under one mktemp dir
# (each data dir is deleted as soon as its measurement is done); only the PIDs
# this script started are signalled.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

QUICK=0
BUILD=1
ONLY="restart defrag compact"
SERVERS="etcd keel"
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --servers) SERVERS="$2"; shift 2 ;;
    --keep-results) KEEP="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$QUICK" = 1 ]; then
  RESTART_KEYS=20000
  DEFRAG_KEYS=30000
  COMPACT_REVS=50000
  COMPACT_KEYSPACE=1000
  DEFRAG_LOAD_SECS=12
  COMPACT_LOAD_SECS=10
  BASELINE_SECS=5
else
  RESTART_KEYS=1000000
  DEFRAG_KEYS=1200000
  COMPACT_REVS=1000000
  COMPACT_KEYSPACE=10000
  DEFRAG_LOAD_SECS=60
  COMPACT_LOAD_SECS=60
  BASELINE_SECS=20
fi
RESTART_VAL=256
DEFRAG_VAL=1024
COMPACT_VAL=256
KEY_SIZE=16
RESTARTS=3
RATE=500            # puts/s of the keel-bench load during defrag/compaction
RATE_CLIENTS=16
PROBE_RATE=100      # puts/s of the open-loop probe (on top of RATE)
LOAD_CLIENTS=128    # bulk loads: as fast as possible
LOAD_CONNS=16
LEAD_SECS=2         # the load runs this long before defrag/compaction starts
TAIL_SECS=3         # ... and the probe this long after it ended
QUOTA=$((8 * 1024 * 1024 * 1024)) # same --quota-backend-bytes for both (8 GiB: no NOSPACE)
DEADLINE_SECS=900   # any single wait

command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "etcdctl is not installed (apt-get install etcd-client)" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is not installed" >&2; exit 1; }
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[ "$BUILD" = 0 ] || cargo build --release -q -p keel-server -p keel-bench
KEEL=$(realpath "$TARGET_DIR/release/keel")
BENCH=$(realpath "$TARGET_DIR/release/keel-bench")

VENV=${XDG_CACHE_HOME:-$HOME/.cache}/keel-storage-compare-venv
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q grpcio grpcio-tools
fi
PY=$VENV/bin/python

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-storage.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ -z "$KEEP" ] || { mkdir -p "$KEEP"; cp "$WORK"/*.log "$WORK"/*.json "$WORK"/*.csv "$WORK"/results.txt "$KEEP"/ 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
RESULTS=$WORK/results.txt
say() { echo "$*" | tee -a "$RESULTS"; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

# ---------------------------------------------------------------- the probe
mkdir -p "$WORK/pb"
"$PY" -m grpc_tools.protoc -I "$REPO/server/proto" --python_out="$WORK/pb" --grpc_python_out="$WORK/pb" \
  "$REPO/server/proto/etcdserverpb/rpc.proto" "$REPO/server/proto/mvccpb/kv.proto" "$REPO/server/proto/authpb/auth.proto"
cat >"$WORK/probe.py" <<'EOF'
"""Tiny etcd v3 client: restart polling, an open-loop put probe, window stats."""
import argparse, asyncio, csv, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pb"))


def poll(a):
    """Until the key answers with the expected value: print the epoch second of that answer."""
    import grpc
    from etcdserverpb import rpc_pb2, rpc_pb2_grpc
    open(a.ready_file, "w").close()
    deadline = time.time() + a.max_secs
    attempts, last = 0, "no attempt"
    while time.time() < deadline:
        attempts += 1
        channel = grpc.insecure_channel(a.endpoint, options=[
            ("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
            ("grpc.max_reconnect_backoff_ms", 50)])
        try:
            r = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=a.key.encode()), timeout=1.0)
            answered = time.time()
            if r.kvs and r.kvs[0].value == a.expect.encode():
                print("%.6f %d" % (answered, attempts))
                return 0
            print("answered without the expected value (%r): %s" % (a.expect, r), file=sys.stderr)
            return 2
        except grpc.RpcError as e:
            last = "%s: %s" % (e.code(), e.details())
        finally:
            channel.close()
        time.sleep(0.01)  # poll interval
    print("no answer within %ss; last error: %s" % (a.max_secs, last), file=sys.stderr)
    return 1


async def probe_async(a):
    """Open loop: put i is sent at start + i/rate whatever is in flight; latency counts from then."""
    import grpc
    from etcdserverpb import rpc_pb2, rpc_pb2_grpc
    channel = grpc.aio.insecure_channel(a.endpoint)
    stub = rpc_pb2_grpc.KVStub(channel)
    value = b"p" * a.val_size
    records, tasks = [], set()
    m0, e0 = time.monotonic(), time.time()

    async def one(i, due):
        sent = time.monotonic()
        try:
            await stub.Put(rpc_pb2.PutRequest(key=b"probe/%d" % (i % 1000), value=value), timeout=a.timeout)
            ok = 1
        except grpc.aio.AioRpcError as e:
            ok = 0
            print("probe put %d: %s %s" % (i, e.code(), e.details()), file=sys.stderr)
        done = time.monotonic()
        records.append((e0 + (due - m0), sent - due, done - due, ok))

    i = 0
    while True:
        due = m0 + i / a.rate
        ahead = due - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        if os.path.exists(a.stop_file) or time.monotonic() - m0 > a.max_secs:
            break
        t = asyncio.create_task(one(i, due))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=a.timeout + 5)
    await channel.close()
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["due_epoch_s", "send_lag_s", "latency_s", "ok"])
        for r in sorted(records):
            w.writerow(["%.6f" % r[0], "%.6f" % r[1], "%.6f" % r[2], r[3]])
    return 0


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def stats(a):
    """Latency (ms) of the probe's puts that were due within [from, to]: n errors p50 p99 max."""
    lat, errors = [], 0
    with open(a.csv) as f:
        for row in csv.DictReader(f):
            due = float(row["due_epoch_s"])
            if a.start <= due <= a.end:
                if row["ok"] == "1":
                    lat.append(float(row["latency_s"]) * 1e3)
                else:
                    errors += 1
    lat.sort()
    print("%d %d %.2f %.2f %.2f" % (len(lat), errors, pct(lat, 50), pct(lat, 99), lat[-1] if lat else float("nan")))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("poll")
    q.add_argument("--endpoint", required=True); q.add_argument("--key", required=True)
    q.add_argument("--expect", required=True); q.add_argument("--ready-file", required=True)
    q.add_argument("--max-secs", type=float, default=600)
    q = sub.add_parser("probe")
    q.add_argument("--endpoint", required=True); q.add_argument("--rate", type=float, required=True)
    q.add_argument("--val-size", type=int, required=True); q.add_argument("--stop-file", required=True)
    q.add_argument("--out", required=True); q.add_argument("--max-secs", type=float, default=900)
    q.add_argument("--timeout", type=float, default=600)
    q = sub.add_parser("stats")
    q.add_argument("--csv", required=True); q.add_argument("--start", type=float, required=True)
    q.add_argument("--end", type=float, required=True)
    a = p.parse_args()
    if a.cmd == "poll":
        return poll(a)
    if a.cmd == "probe":
        return asyncio.run(probe_async(a))
    return stats(a)


sys.exit(main())
EOF

# --------------------------------------------------------------- servers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# setup_server NAME: picks the binary, ports and data dir of NAME (etcd|keel).
setup_server() {
  NAME=$1
  case "$NAME" in
    etcd) BIN=etcd; DB_FILE=member/snap/db ;;
    keel) BIN=$KEEL; DB_FILE=member/snap/keel.db ;;
    *) echo "unknown server $NAME" >&2; exit 2 ;;
  esac
  PORT=$(free_port); PEER_PORT=$(free_port)
  DATA=$WORK/$NAME.data
  EP=127.0.0.1:$PORT
}

# launch LOG: starts the server on $DATA in the background, sets SPID.
launch() {
  "$BIN" --name "$NAME" --data-dir "$DATA" --quota-backend-bytes "$QUOTA" \
    --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "$NAME=http://127.0.0.1:$PEER_PORT" >>"$1" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
}

ectl() { ETCDCTL_API=3 etcdctl --endpoints "$EP" "$@"; }

start_fresh() { # LOG
  launch "$1"
  local end=$(( $(date +%s) + 60 ))
  until ectl --dial-timeout=1s --command-timeout=2s endpoint health >/dev/null 2>&1; do
    kill -0 "$SPID" 2>/dev/null || { echo "$NAME exited at start; log:" >&2; tail -30 "$1" >&2; exit 1; }
    [ "$(date +%s)" -lt "$end" ] || { echo "$NAME not healthy within 60 s; log:" >&2; tail -30 "$1" >&2; exit 1; }
    sleep 0.05
  done
}

# stop_server SIGNAL: signals SPID and waits (bounded) until it is gone.
stop_server() {
  local sig=$1 end=$(( $(date +%s) + 120 ))
  kill "-$sig" "$SPID"
  while kill -0 "$SPID" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$end" ]; then
      say "ODD: $NAME (pid $SPID) still running 120 s after SIG$sig; killing it with SIGKILL"
      kill -9 "$SPID"
    fi
    sleep 0.05
  done
  wait "$SPID" 2>/dev/null || true
}

status_json() { ectl --command-timeout=30s endpoint status -w json; }
revision() { status_json | jq '.[0].Status.header.revision'; }
db_size() { status_json | jq '.[0].Status.dbSize'; }
file_size() { stat -c %s "$DATA/$DB_FILE"; }
file_alloc() { du -B1 "$DATA/$DB_FILE" | cut -f1; }
wal_size() { du -sb "$DATA/member/wal" | cut -f1; }
mib() { calc "'%.1f' % ($1 / 1048576)"; }

# bulk_load LOG_JSON ARGS...: keel-bench put as fast as possible; prints a one-line summary.
bulk_load() {
  local out=$1; shift
  "$BENCH" --endpoints "$EP" --clients "$LOAD_CLIENTS" --conns "$LOAD_CONNS" --json put --key-size "$KEY_SIZE" "$@" >"$out"
  jq -r '"\(.requests) puts in \(.total_secs|floor) s (\(.requests_per_sec|floor)/s), errors \(.errors)"' "$out"
  [ "$(jq .errors "$out")" = 0 ] || { say "ODD: errors during the load: $(jq -c .error_distribution "$out")"; }
}

bench_summary() { # JSON -> "p50 p99 max errors" in ms
  jq -r '"\(.percentiles_secs.p50*1000*100|round/100) \(.percentiles_secs.p99*1000*100|round/100) \(.slowest_secs*1000*100|round/100) \(.errors)"' "$1"
}

machine_facts() {
  say "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
  say "disk: $(df -h "$WORK" | awk 'NR==2{print $1", "$2" total, "$4" free"}'), $(lsblk -dno NAME,ROTA,SCHED 2>/dev/null | awk '$1=="vda"{print "virtio "$1", rotational="$2", scheduler="$3}')"
  local t0 t1
  t0=$(now); dd if=/dev/zero of="$WORK/dsync.tmp" bs=4k count=200 oflag=dsync 2>/dev/null; t1=$(now); rm -f "$WORK/dsync.tmp"
  say "disk: 200 x 4 KiB dd oflag=dsync: $(calc "'%.2f' % (($t1 - $t0) * 1000 / 200)") ms per synchronous write"
  say "etcd: $(etcd --version | head -1); keel: $(git -C "$REPO" rev-parse --short HEAD) ($(git -C "$REPO" branch --show-current))"
}

# ----------------------------------------------------------- measurements
restart_once() { # EXPECT LABEL -> appends the seconds to RESTART_TIMES
  local expect=$1 label=$2 ready=$WORK/poll.ready out=$WORK/poll.out t0 t1 rc
  rm -f "$ready" "$out"
  "$PY" "$WORK/probe.py" poll --endpoint "$EP" --key restart-probe --expect "$expect" \
    --ready-file "$ready" --max-secs 600 >"$out" 2>"$WORK/poll.err" &
  local ppid=$!
  PIDS+=("$ppid")
  local end=$(( $(date +%s) + 60 ))
  until [ -e "$ready" ]; do [ "$(date +%s)" -lt "$end" ] || { echo "the poller did not start" >&2; exit 1; }; sleep 0.01; done
  echo "=== restart $label $(date -Is)" >>"$WORK/$NAME.restart.log"
  t0=$(now)
  launch "$WORK/$NAME.restart.log"
  rc=0; wait "$ppid" || rc=$?
  if [ "$rc" != 0 ]; then
    say "ODD: $NAME restart $label: no correct read: $(cat "$WORK/poll.err")"
    tail -20 "$WORK/$NAME.restart.log" | tee -a "$RESULTS"
    exit 1
  fi
  t1=$(cut -d' ' -f1 "$out")
  RESTART_TIMES+=("$(calc "'%.3f' % ($t1 - $t0)")")
}

median() { python3 -c "import statistics,sys; print('%.3f' % statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

measure_restart() {
  setup_server "$1"
  say ""
  say "## restart: $NAME, $RESTART_KEYS keys x $RESTART_VAL B values ($(uptime | sed 's/.*load/load/'))"
  start_fresh "$WORK/$NAME.log"
  say "load: $(bulk_load "$WORK/$NAME.restart-load.json" --total "$RESTART_KEYS" --key-space-size "$RESTART_KEYS" --sequential-keys --val-size "$RESTART_VAL")"
  local expect
  expect="written-last-$(date +%s%N)"
  ectl put restart-probe "$expect" >/dev/null
  # kill -9 under load: a last burst of overwrites is in flight, so the WAL has a tail that
  # the store's last checkpoint does not cover.
  "$BENCH" --endpoints "$EP" --clients "$LOAD_CLIENTS" --conns "$LOAD_CONNS" put --key-size "$KEY_SIZE" \
    --total "$RESTART_KEYS" --key-space-size "$RESTART_KEYS" --sequential-keys --val-size "$RESTART_VAL" >/dev/null 2>&1 &
  local burst=$!; PIDS+=("$burst")
  sleep 1   # the offset of the kill into the burst, not a readiness wait
  stop_server 9 2>/dev/null
  kill "$burst" 2>/dev/null || true; wait "$burst" 2>/dev/null || true
  say "after kill -9 1 s into a burst of overwrites at the end of the load: file $(mib "$(file_size)") MiB, WAL $(mib "$(wal_size)") MiB ($(ls "$DATA/member/wal" | wc -l) files)"
  cp -a "$DATA" "$WORK/crashed"
  RESTART_TIMES=()
  for i in $(seq 1 "$RESTARTS"); do
    rm -rf "$DATA"; cp -a "$WORK/crashed" "$DATA"
    restart_once "$expect" "kill9-$i"
    stop_server TERM
  done
  rm -rf "$WORK/crashed"
  say "restart after kill -9 (s): ${RESTART_TIMES[*]}; median $(median "${RESTART_TIMES[@]}")"
  eval "R_KILL9_$NAME=$(median "${RESTART_TIMES[@]}")"
  say "after SIGTERM: file $(mib "$(file_size)") MiB, WAL $(mib "$(wal_size)") MiB ($(ls "$DATA/member/wal" | wc -l) files)"
  RESTART_TIMES=()
  for i in $(seq 1 "$RESTARTS"); do
    restart_once "$expect" "term-$i"
    stop_server TERM
  done
  say "restart after SIGTERM (s): ${RESTART_TIMES[*]}; median $(median "${RESTART_TIMES[@]}")"
  eval "R_TERM_$NAME=$(median "${RESTART_TIMES[@]}")"
  [ "$NAME" != keel ] || awk '/^=== restart/{r=$3} /replaying the WAL/{sub(/.*checkpoint_index=/,"checkpoint_index="); print "  keel log, restart " r ": replaying the WAL after " $0}' "$WORK/$NAME.restart.log" | tee -a "$RESULTS"
  rm -rf "$DATA"
}

# timed_load_with OP_LABEL KEYSPACE VAL LOAD_SECS COMMAND...: runs keel-bench at RATE and the probe,
# starts COMMAND LEAD_SECS into the load, and reports the window [start, end] of COMMAND.
timed_load_with() {
  local label=$1 keyspace=$2 val=$3 secs=$4; shift 4
  local stop=$WORK/probe.stop csv=$WORK/$NAME.$label.csv json=$WORK/$NAME.$label.json t_start t_end
  rm -f "$stop"
  "$PY" "$WORK/probe.py" probe --endpoint "$EP" --rate "$PROBE_RATE" --val-size "$val" \
    --stop-file "$stop" --out "$csv" --max-secs "$DEADLINE_SECS" 2>"$WORK/$NAME.$label.probe.log" &
  local probe_pid=$!; PIDS+=("$probe_pid")
  "$BENCH" --endpoints "$EP" --clients "$RATE_CLIENTS" --conns "$RATE_CLIENTS" --request-timeout 600s --json \
    put --total $(( RATE * secs )) --rate "$RATE" --key-size "$KEY_SIZE" --key-space-size "$keyspace" --val-size "$val" >"$json" &
  local bench_pid=$!; PIDS+=("$bench_pid")
  local load_start; load_start=$(now)
  sleep "$LEAD_SECS"   # the offset the measurement asks for, not a readiness wait
  t_start=$(now)
  local inode; inode=$(stat -c %i "$DATA/$DB_FILE")
  if [ "$#" -gt 0 ]; then "$@" >"$WORK/$NAME.$label.cmd.log" 2>&1 || say "ODD: '$*' failed: $(cat "$WORK/$NAME.$label.cmd.log")"; else sleep "$BASELINE_SECS"; fi
  t_end=$(now)
  AFTER_DB=$(db_size)   # right after the command, before more puts land
  if [ "$label" = defrag ]; then
    # Both rename a new file over the old one; keel does it at the checkpoint after the
    # defragmentation answered (docs/ops/storage.md), so wait (bounded) for the new inode.
    local until=$(( $(date +%s) + 10 ))
    while [ "$(stat -c %i "$DATA/$DB_FILE")" = "$inode" ] && [ "$(date +%s)" -lt "$until" ]; do sleep 0.02; done
    RENAME_SECS=$(calc "'%.2f' % ($(now) - $t_end)")
  fi
  AFTER_FILE=$(file_size); AFTER_ALLOC=$(file_alloc)
  ls -li "$DATA/member/snap" >>"$WORK/$NAME.$label.cmd.log"
  sleep "$TAIL_SECS"
  touch "$stop"
  wait "$probe_pid" || say "ODD: the probe exited with an error: $(tail -5 "$WORK/$NAME.$label.probe.log")"
  wait "$bench_pid" || say "ODD: keel-bench exited with an error"
  local load_secs; load_secs=$(jq .total_secs "$json")
  WINDOW_SECS=$(calc "'%.2f' % ($t_end - $t_start)")
  [ "$(calc "int($t_end - $load_start < $load_secs)")" = 1 ] ||
    say "NOTE: the keel-bench load ($load_secs s) ended before the window did; the probe covers the whole window"
  read -r PN PERR P50 P99 PMAX < <("$PY" "$WORK/probe.py" stats --csv "$csv" --start "$t_start" --end "$t_end")
  read -r XN XERR X50 X99 XMAX < <("$PY" "$WORK/probe.py" stats --csv "$csv" --start "$t_start" --end "$(calc "$t_end + $TAIL_SECS")")
  read -r B50 B99 BMAX BERR < <(bench_summary "$json")
  say "  window ${WINDOW_SECS} s; probe puts due in the window: n=$PN errors=$PERR p50=${P50} ms p99=${P99} ms max=${PMAX} ms"
  say "  ... due from its start until ${TAIL_SECS} s after its end: n=$XN errors=$XERR p50=${X50} ms p99=${X99} ms max=${XMAX} ms"
  say "  keel-bench whole run ($(jq -r '.requests' "$json") puts at $RATE/s over $(printf '%.1f' "$load_secs") s): p50=${B50} ms p99=${B99} ms max=${BMAX} ms errors=$BERR"
  say "  keel-bench completed per second: $(jq -c .completed_per_second "$json")"
}

# delete_first_bytes LO HI: deletes, in one txn, the keys whose first byte is in [LO, HI).
# keel-bench's keys are etcd benchmark's: the key number as a zigzag varint, zero-padded. For
# numbers >= 64 the first byte is 0x80 | (2n mod 128), so first bytes 0x80..0xbf are exactly the
# numbers with n mod 64 < 32: half of the key space, spread over all of it.
delete_first_bytes() {
  printf '\ndel "\\x%02x" "\\x%02x"\n\n\n' "$1" "$2" | ectl --command-timeout=600s txn -i >>"$WORK/$NAME.delete.log" 2>&1
}

# compact_physical REV: `etcdctl compact REV --physical`. keel answers a physical compaction
# within its request deadline (5 s + 2 election timeouts) and otherwise with "etcdserver:
# request timed out" while the removal goes on (etcd 3.4 waits for it without that deadline).
# Then this waits (bounded) for keel's "compaction finished" log line and notes the timeout in
# $WORK/compact.timedout.
compact_physical() {
  local rev=$1 finished_before out rc=0
  finished_before=$(grep -c "compaction finished" "$WORK/$NAME.log" || true)
  out=$(ectl --command-timeout=600s compact "$rev" --physical 2>&1) || rc=$?
  echo "$out"
  [ "$rc" != 0 ] || return 0
  if [ "$NAME" = keel ] && [[ "$out" == *"request timed out"* ]]; then
    echo "$(date -Is) compact $rev --physical: $(echo "$out" | tail -1)" >>"$WORK/compact.timedout"
    local end=$(( $(date +%s) + 600 ))
    while [ "$(grep -c "compaction finished" "$WORK/$NAME.log" || true)" = "$finished_before" ]; do
      [ "$(date +%s)" -lt "$end" ] || { echo "no 'compaction finished' within 600 s" >&2; return 1; }
      sleep 0.05
    done
    grep "compaction finished" "$WORK/$NAME.log" | tail -1 >>"$WORK/compact.timedout"
    return 0
  fi
  return "$rc"
}
note_compact_timeout() {
  if [ -e "$WORK/compact.timedout" ]; then
    say "  ODD: keel answered the physical compaction with a timeout; the time above runs until its 'compaction finished' log line:"
    sed 's/^/    /' "$WORK/compact.timedout" | tee -a "$RESULTS"
    rm -f "$WORK/compact.timedout"
  fi
}

measure_defrag() {
  setup_server "$1"
  say ""
  say "## defrag: $NAME, $DEFRAG_KEYS keys x $DEFRAG_VAL B values, half deleted, compacted ($(uptime | sed 's/.*load/load/'))"
  start_fresh "$WORK/$NAME.log"
  say "load: $(bulk_load "$WORK/$NAME.defrag-load.json" --total "$DEFRAG_KEYS" --key-space-size "$DEFRAG_KEYS" --sequential-keys --val-size "$DEFRAG_VAL")"
  say "after the load: file $(mib "$(file_size)") MiB (status dbSize $(mib "$(db_size)") MiB), WAL $(mib "$(wal_size)") MiB"
  local t0 t1 rev
  t0=$(now)
  for c in $(seq 0 15); do delete_first_bytes $(( 0x80 + 4 * c )) $(( 0x84 + 4 * c )); done
  t1=$(now)
  local left; left=$(ectl --command-timeout=120s get "" --prefix --keys-only --limit=1 -w json | jq .count)
  say "deleted the keys numbered n mod 64 < 32 (half) in 16 range deletes: $(calc "'%.1f' % ($t1 - $t0)") s; $left keys left"
  rev=$(revision); t0=$(now)
  compact_physical "$rev" >/dev/null
  t1=$(now)
  say "compact $rev --physical (no load): $(calc "'%.1f' % ($t1 - $t0)") s"
  note_compact_timeout
  local before_file before_db
  before_file=$(file_size); before_db=$(db_size)
  say "before defrag: file $(mib "$before_file") MiB (allocated $(mib "$(file_alloc)") MiB; dbSize $(mib "$before_db") MiB)"
  say "put $RATE/s x $RATE_CLIENTS clients (keel-bench, ${DEFRAG_VAL} B, random over $DEFRAG_KEYS keys) + probe $PROBE_RATE/s; defrag ${LEAD_SECS} s in:"
  timed_load_with defrag "$DEFRAG_KEYS" "$DEFRAG_VAL" "$DEFRAG_LOAD_SECS" ectl --command-timeout=600s defrag
  local after_file=$AFTER_FILE after_db=$AFTER_DB
  say "  defrag: ${WINDOW_SECS} s; file $(mib "$before_file") -> $(mib "$after_file") MiB (allocated $(mib "$AFTER_ALLOC") MiB) $RENAME_SECS s after it answered (new file in place); dbSize $(mib "$before_db") -> $(mib "$after_db") MiB right after it; file $(mib "$(file_size)") MiB at the end of the load"
  eval "D_$NAME='$WINDOW_SECS $P50 $P99 $PMAX $B50 $B99 $BMAX $(mib "$before_file") $(mib "$after_file") $X50 $X99 $XMAX'"
  [ "$NAME" != keel ] || grep -ih "defrag" "$WORK/$NAME.log" | tail -4 | sed 's/^/  keel log: /' | tee -a "$RESULTS"
  stop_server TERM
  rm -rf "$DATA"
}

measure_compact() {
  setup_server "$1"
  say ""
  say "## compaction: $NAME, $COMPACT_REVS puts over $COMPACT_KEYSPACE keys x $COMPACT_VAL B ($(uptime | sed 's/.*load/load/'))"
  start_fresh "$WORK/$NAME.log"
  say "load: $(bulk_load "$WORK/$NAME.compact-load.json" --total "$COMPACT_REVS" --key-space-size "$COMPACT_KEYSPACE" --val-size "$COMPACT_VAL")"
  say "after the load: revision $(revision), file $(mib "$(file_size)") MiB, WAL $(mib "$(wal_size)") MiB"
  say "baseline: put $RATE/s x $RATE_CLIENTS clients + probe $PROBE_RATE/s, no compaction:"
  timed_load_with baseline "$COMPACT_KEYSPACE" "$COMPACT_VAL" $(( LEAD_SECS + BASELINE_SECS + TAIL_SECS ))
  local base="$P50 $P99 $PMAX $B50 $B99 $BMAX"
  local rev; rev=$(revision)
  say "with compaction: the same load; compact $rev --physical ${LEAD_SECS} s in:"
  timed_load_with compact "$COMPACT_KEYSPACE" "$COMPACT_VAL" "$COMPACT_LOAD_SECS" compact_physical "$rev"
  say "  compaction: ${WINDOW_SECS} s; file $(mib "$AFTER_FILE") MiB right after it"
  note_compact_timeout
  eval "C_$NAME='$WINDOW_SECS $P50 $P99 $PMAX $B50 $B99 $BMAX $base'"
  stop_server TERM
  rm -rf "$DATA"
}

say "# storage-compare $(date -Is) $([ "$QUICK" = 1 ] && echo '(--quick)')"
machine_facts
for m in $ONLY; do
  for s in $SERVERS; do
    case "$m" in
      restart) measure_restart "$s" ;;
      defrag) measure_defrag "$s" ;;
      compact) measure_compact "$s" ;;
      *) echo "unknown measurement $m" >&2; exit 2 ;;
    esac
  done
done

# ------------------------------------------------------------------ tables
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
if [[ " $SERVERS " == *" etcd "* && " $SERVERS " == *" keel "* ]]; then
  say ""
  say "# summary (this run; ratio = keel/etcd)"
  if [[ " $ONLY " == *" restart "* ]]; then
    say "restart, median of $RESTARTS (s): | etcd | keel | keel/etcd"
    say "  after kill -9                    | $R_KILL9_etcd | $R_KILL9_keel | $(ratio "$R_KILL9_keel" "$R_KILL9_etcd")"
    say "  after SIGTERM                    | $R_TERM_etcd | $R_TERM_keel | $(ratio "$R_TERM_keel" "$R_TERM_etcd")"
  fi
  if [[ " $ONLY " == *" defrag "* ]]; then
    read -r ed ep50 ep99 epmax eb50 eb99 ebmax ef0 ef1 ex50 ex99 exmax <<<"$D_etcd"
    read -r kd kp50 kp99 kpmax kb50 kb99 kbmax kf0 kf1 kx50 kx99 kxmax <<<"$D_keel"
    say "defrag:                            | etcd | keel | keel/etcd"
    say "  duration (s)                     | $ed | $kd | $(ratio "$kd" "$ed")"
    say "  file before -> after (MiB)       | $ef0 -> $ef1 | $kf0 -> $kf1 |"
    say "  probe p50 / p99 / max in window (ms) | $ep50 / $ep99 / $epmax | $kp50 / $kp99 / $kpmax | $(ratio "$kp99" "$ep99") (p99), $(ratio "$kpmax" "$epmax") (max)"
    say "  probe p50 / p99 / max, window + ${TAIL_SECS} s (ms) | $ex50 / $ex99 / $exmax | $kx50 / $kx99 / $kxmax | $(ratio "$kx99" "$ex99") (p99), $(ratio "$kxmax" "$exmax") (max)"
    say "  keel-bench whole run p50 / p99 / max (ms) | $eb50 / $eb99 / $ebmax | $kb50 / $kb99 / $kbmax | $(ratio "$kb99" "$eb99") (p99)"
  fi
  if [[ " $ONLY " == *" compact "* ]]; then
    read -r ed ep50 ep99 epmax eb50 eb99 ebmax ebp50 ebp99 ebpmax ebb50 ebb99 ebbmax <<<"$C_etcd"
    read -r kd kp50 kp99 kpmax kb50 kb99 kbmax kbp50 kbp99 kbpmax kbb50 kbb99 kbbmax <<<"$C_keel"
    say "compaction:                        | etcd | keel | keel/etcd"
    say "  duration (s)                     | $ed | $kd | $(ratio "$kd" "$ed")"
    say "  probe p50 / p99 / max in window (ms) | $ep50 / $ep99 / $epmax | $kp50 / $kp99 / $kpmax | $(ratio "$kp99" "$ep99") (p99), $(ratio "$kpmax" "$epmax") (max)"
    say "  keel-bench whole run p50 / p99 / max (ms) | $eb50 / $eb99 / $ebmax | $kb50 / $kb99 / $kbmax | $(ratio "$kb99" "$eb99") (p99)"
    say "  baseline probe p50 / p99 / max (ms) | $ebp50 / $ebp99 / $ebpmax | $kbp50 / $kbp99 / $kbpmax | $(ratio "$kbp99" "$ebp99") (p99)"
    say "  baseline keel-bench p50 / p99 / max (ms) | $ebb50 / $ebb99 / $ebbmax | $kbb50 / $kbb99 / $kbbmax | $(ratio "$kbb99" "$ebb99") (p99)"
  fi
fi
