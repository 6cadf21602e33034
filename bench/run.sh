#!/usr/bin/env bash
# Oponn's benchmarks: each prints the figures BENCHMARKS.md records.
#
#   bench/run.sh votes       vote throughput beside /livez, embedded default
#   bench/run.sh votes-pg    the same on PostgreSQL + Redis
#   bench/run.sh fanout      10,000 watchers: delivery latency, RSS per idle SSE connection
#   bench/run.sh startup     cold start time and idle RSS
#   bench/run.sh profile     a CPU profile of the server taking votes (needs perf)
#
# Uses target/release/oponn (cargo build --release --bin oponn). The server
# and the load generator share this machine; everything stays on loopback.
# votes-pg uses BENCH_DATABASE_URL (a server it may create a database on;
# default postgres://postgres@127.0.0.1:5432/postgres) and BENCH_REDIS_URL
# (default redis://127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${OPONN_BIN:-target/release/oponn}
PORT=${BENCH_PORT:-8091}
URL="http://127.0.0.1:$PORT"
[ -x "$BIN" ] || { echo "build first: cargo build --release --bin oponn" >&2; exit 2; }

server_pid=""
data_dir=""
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  [ -n "$data_dir" ] && rm -rf "$data_dir"
  server_pid=""
}
trap stop_server EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Starts the server with extra environment "$@"; sets start_ms to the
# milliseconds from exec until /livez answered. The load comes from one
# address, so the per-client rate limits are off (0) for every benchmark;
# a public instance keeps their defaults (SECURITY.md).
start_ms=0
start_server() {
  data_dir=$(mktemp -d)
  local started=$(date +%s%N)
  env OPONN_BIND="127.0.0.1:$PORT" OPONN_DATA_DIR="$data_dir" RUST_LOG=warn \
    OPONN_BALLOTS_PER_MINUTE=0 OPONN_WRITE_INS_PER_MINUTE=0 OPONN_STREAMS_PER_MINUTE=0 \
    "$@" "$BIN" serve \
    > "$data_dir/log" 2>&1 &
  server_pid=$!
  until curl -fs "$URL/livez" > /dev/null 2>&1; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/log" >&2; exit 1; }
    sleep 0.01
  done
  start_ms=$(( ($(date +%s%N) - started) / 1000000 ))
}

case "${1:-}" in
  votes)
    start_server
    "$BIN" simulate --url "$URL" --voters "${VOTERS:-20000}" --concurrency "${CONCURRENCY:-32}" \
      --watchers 20 --target both
    ;;
  votes-pg)
    db_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    name="oponn_bench_$(date +%s)"
    psql "$db_url" -q -c "create database $name"
    start_server DATABASE_URL="${db_url%/*}/$name" REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
    "$BIN" simulate --url "$URL" --voters "${VOTERS:-20000}" --concurrency "${CONCURRENCY:-32}" \
      --watchers 20 --target both
    stop_server
    psql "$db_url" -q -c "drop database $name"
    ;;
  fanout)
    start_server ${SERVER_ENV:-}
    before=$(rss_kib "$server_pid")
    watchers=${WATCHERS:-10000}
    "$BIN" simulate --url "$URL" --voters "${VOTERS:-300}" --concurrency 4 --watchers "$watchers" \
      > "$data_dir/fanout.txt" &
    sim=$!
    # The largest RSS seen while the watchers are connected.
    peak=$before
    while kill -0 "$sim" 2>/dev/null; do
      now=$(rss_kib "$server_pid"); [ "$now" -gt "$peak" ] && peak=$now
      sleep 0.2
    done
    wait "$sim" || true
    cat "$data_dir/fanout.txt"
    echo "server RSS: ${before} KiB before, ${peak} KiB at most with $watchers watchers:" \
      "$(( (peak - before) / watchers )) KiB per SSE connection"
    ;;
  profile)
    # A CPU profile of the server taking votes: the server runs under perf.
    out=${PROFILE:-/tmp/oponn-votes.perf}
    data_dir=$(mktemp -d)
    env OPONN_BIND="127.0.0.1:$PORT" OPONN_DATA_DIR="$data_dir" RUST_LOG=warn \
      perf record -F 499 -g -o "$out" -- "$BIN" serve > "$data_dir/log" 2>&1 &
    until curl -fs "$URL/livez" > /dev/null 2>&1; do sleep 0.05; done
    "$BIN" simulate --url "$URL" --voters "${VOTERS:-15000}" --concurrency "${CONCURRENCY:-32}"
    pkill -INT -f "$BIN serve" || true
    wait || true
    perf report -i "$out" --no-children --sort dso --stdio -g none 2> /dev/null | grep '%' | head -5
    perf report -i "$out" --no-children --sort comm --stdio -g none 2> /dev/null | grep '%' | head -3
    ;;
  startup)
    start_server
    echo "cold start: ${start_ms} ms from exec to the first /livez answer (embedded default, new data dir)"
    echo "idle RSS: $(rss_kib "$server_pid") KiB"
    ;;
  *)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
