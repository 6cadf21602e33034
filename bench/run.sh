#!/usr/bin/env bash
# Oponn's benchmarks: each prints the figures BENCHMARKS.md records.
#
#   bench/run.sh votes       vote throughput beside /livez, embedded default
#   bench/run.sh votes-pg    the same on PostgreSQL + Redis
#   bench/run.sh cpu         server CPU time per vote and per /livez request, and their ratio
#                            (BALLOTS=n spreads the voters over n ballots)
#   bench/run.sh cpu-pg      the same on PostgreSQL + Redis, with their CPU per vote beside it
#   bench/run.sh vote-floor  cpu against its floor: the floor program committing each vote to
#                            SQLite, then Oponn, and Oponn's CPU per vote as a multiple of it
#   bench/run.sh cluster     two instances on one PostgreSQL + Redis against one at the same
#                            concurrency, with each side's CPU per vote
#   bench/run.sh fanout-floor  one vote to N watchers: the bare floor program, then Oponn, and the ratio
#   bench/run.sh peer        the original Python service (PEER_DIR) and Oponn, the same tool back to back
#   bench/run.sh fanout      10,000 watchers: delivery latency, RSS per idle SSE connection
#   bench/run.sh watchers    the watchers' scale curve: one vote to 1,000, 10,000 and 50,000
#                            watchers (WATCHER_COUNTS), floor and Oponn, with RSS per connection
#   bench/run.sh startup     cold start time and idle RSS
#   bench/run.sh profile     a CPU profile of the server taking votes (needs perf)
#   bench/run.sh instructions  instructions the server runs per vote and per /livez request,
#                            and their ratio (needs valgrind): repeatable where CPU time is noisy
#
# Uses target/release/oponn (cargo build --release --bin oponn). The server
# and the load generator share this machine; everything stays on loopback.
# SERVER_CPUS and LOAD_CPUS (taskset lists, e.g. 0 and 1) pin the server
# and the load generator to separate cores, so each figure can be told
# apart from the load generator's share.
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

# The largest RSS of the server (KiB), from $2 on, sampled every 50 ms
# until the process $1 (the load generator) exits: a run of a thousand
# watchers is over in well under a second.
peak_rss_until_done() {
  local peak=$2 now
  while kill -0 "$1" 2> /dev/null; do
    now=$(rss_kib "$server_pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.05
  done
  echo "$peak"
}

# Starts the floor program (FLOOR_BIN, pinned to SERVER_CPUS when set) in
# place of the server, with its extra arguments "$@" (frame size, database
# file), and waits until it answers.
start_floor() {
  local floor_bin=${FLOOR_BIN:-target/release/fanout-floor}
  [ -x "$floor_bin" ] || { echo "build first: cargo build --release -p fanout-floor" >&2; exit 2; }
  if [ -n "${SERVER_CPUS:-}" ]; then taskset -c "$SERVER_CPUS" "$floor_bin" "127.0.0.1:$PORT" "$@" > /dev/null & else "$floor_bin" "127.0.0.1:$PORT" "$@" > /dev/null & fi
  server_pid=$!
  until curl -fs "$URL/api/v1/ballots/floor/tally" > /dev/null 2>&1; do sleep 0.01; done
}

# CPU time (user + system) of the processes "$@", each with that of its
# children that have exited, in milliseconds. /proc counts it in USER_HZ,
# which Linux fixes at 100 a second for userspace.
cpu_ms() {
  local total=0 pid ticks
  for pid in "$@"; do
    ticks=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || ticks=0
    total=$(( total + ${ticks:-0} ))
  done
  echo $(( total * 10 ))
}

# The CPU time of process $1 split three ways, in milliseconds: user,
# system, and the part of both spent on SQLite's threads (sqlx names them
# sqlx-sqlite-worker-N). Threads that exited drop out of the third.
cpu_split_ms() {
  local user_sys sqlite
  user_sys=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 * 10, $13 * 10}') || user_sys="0 0"
  sqlite=$(cat /proc/"$1"/task/*/stat 2>/dev/null | awk '/\((sqlx-sqlite-wor|floor-writer)/ { sub(/^.*\) /, ""); u += $12; s += $13 } END { print u * 10, s * 10 }')
  echo "${user_sys:-0 0} ${sqlite:-0 0}"
}

# CPU time of PostgreSQL and Redis, in milliseconds: every postgres and
# redis-server process found afresh, with the time of its exited children
# (a backend's, once the postmaster has reaped it), so connections opening
# and closing between two readings neither escape the count nor make the
# difference negative.
backends_cpu_ms() {
  cpu_ms $(pgrep -x postgres) $(pgrep -x redis-server)
}

# Bytes the process $1 has had written to storage (its WAL and database
# file, on the embedded default), from /proc/{pid}/io.
written_bytes() {
  awk '/^write_bytes/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0
}

# Runs the load generator, pinned to LOAD_CPUS when set.
load() {
  if [ -n "${LOAD_CPUS:-}" ]; then taskset -c "$LOAD_CPUS" "$BIN" simulate "$@"; else "$BIN" simulate "$@"; fi
}

# The server command, pinned to SERVER_CPUS when set.
server_cmd() {
  if [ -n "${SERVER_CPUS:-}" ]; then echo "taskset -c $SERVER_CPUS $BIN"; else echo "$BIN"; fi
}

# Votes on a ballot of their own at the server at $1 (WARMUP_VOTERS, by
# default 2,000), unmeasured: the server's database pool grows to its
# size under load, and each new PostgreSQL connection spends tens of
# milliseconds once on its caches and prepared statements, which a short
# run would otherwise charge to its votes.
warm_up() {
  load --url "$1" "${ballot_args[@]}" --voters "${WARMUP_VOTERS:-2000}" --concurrency "${2:-${CONCURRENCY:-32}}" --target votes > /dev/null || true
}

# Extra arguments naming the ballot the voters of warm_up and
# cpu_per_request use: none (each run creates its own) but for the floor,
# which serves one ballot and cannot create another.
ballot_args=()

# Votes, then /livez for as long as the votes took, sampling the CPU time
# of the server (and with "backends", of PostgreSQL and Redis) around
# each: CPU per acknowledged vote against CPU per /livez request.
cpu_per_request() {
  local out="$data_dir/cpu.txt" backends=${1:-}
  local s0 e0=0 s1 e1=0 s2 s3 acked secs answered
  local w0 w1
  warm_up "$URL"
  s0=$(cpu_ms "$server_pid"); w0=$(written_bytes "$server_pid"); split0=$(cpu_split_ms "$server_pid")
  [ -n "$backends" ] && e0=$(backends_cpu_ms)
  local ballots=(--ballots "${BALLOTS:-1}")
  [ ${#ballot_args[@]} -gt 0 ] && ballots=("${ballot_args[@]}")
  load --url "$URL" "${ballots[@]}" --voters "${VOTERS:-10000}" --concurrency "${CONCURRENCY:-32}" \
    --target votes > "$out" || true
  s1=$(cpu_ms "$server_pid"); w1=$(written_bytes "$server_pid"); split1=$(cpu_split_ms "$server_pid")
  [ -n "$backends" ] && e1=$(backends_cpu_ms)
  cat "$out"
  acked=$(sed -n 's/^votes acknowledged: \([0-9]*\) of .* in \([0-9.]*\)s.*/\1/p' "$out")
  secs=$(sed -n 's/^votes acknowledged: [0-9]* of .* in \([0-9.]*\)s.*/\1/p' "$out")
  s2=$(cpu_ms "$server_pid"); split2=$(cpu_split_ms "$server_pid")
  # In milliseconds: on a fast machine the votes take under a second,
  # which whole seconds would round to a /livez phase of none.
  load --url "$URL" --concurrency "${CONCURRENCY:-32}" --target livez \
    --duration "$(awk -v s="$secs" 'BEGIN { printf "%dms", s * 1000 }')" > "$out" || true
  s3=$(cpu_ms "$server_pid"); split3=$(cpu_split_ms "$server_pid")
  cat "$out"
  answered=$(sed -n 's/^\/livez: \([0-9]*\) answered.*/\1/p' "$out")
  awk -v v="$(( s1 - s0 ))" -v n="${acked:-0}" -v l="$(( s3 - s2 ))" -v m="${answered:-0}" -v e="$(( e1 - e0 ))" \
    -v extra="${#backends}" -v w="$(( w1 - w0 ))" 'BEGIN {
      if (n <= 0 || m <= 0) { print "no vote acknowledged or no /livez request answered: nothing to divide by"; exit }
      vote = v * 1000 / n; livez = l * 1000 / m;
      printf "server CPU: %.0f us per vote (%d ms for %d votes), %.1f us per /livez request (%d ms for %d)\n", vote, v, n, livez, l, m;
      printf "a vote costs %.1f /livez requests of server CPU\n", vote / livez;
      if (extra > 0) printf "PostgreSQL + Redis CPU: %.0f us per vote (%d ms)\n", e * 1000 / n, e;
      else printf "written to storage: %.1f KiB per vote\n", w / 1024 / n;
    }'
  # Where the time goes: user against system (the kernel's share, which
  # instruction counts miss), and SQLite's own threads.
  # The HTTP side is every other thread: the runtime's workers, and the
  # blocking pool's (bcrypt, key unwrapping), idle in these runs.
  echo "$split0 $split1 $split2 $split3" | awk -v n="${acked:-0}" -v m="${answered:-0}" '{
      if (n <= 0 || m <= 0) exit;
      user = ($5 - $1) * 1000 / n; sys = ($6 - $2) * 1000 / n;
      sqlite_user = ($7 - $3) * 1000 / n; sqlite_sys = ($8 - $4) * 1000 / n;
      livez_user = ($13 - $9) * 1000 / m; livez_sys = ($14 - $10) * 1000 / m;
      printf "per vote: user %.0f us, system %.0f us; on SQLite'"'"'s threads user %.0f us, system %.0f us; ", user, sys, sqlite_user, sqlite_sys;
      printf "per /livez request: user %.1f us, system %.1f us\n", livez_user, livez_sys;
      if (livez_user + livez_sys <= 0) exit;
      # What a vote would still cost with none of its own logic: the HTTP
      # side'"'"'s kernel time (reading two requests, writing two answers,
      # waking threads), all of SQLite'"'"'s threads, and two requests'"'"'
      # user time at what a /livez request costs.
      kernel_and_sqlite = (sys - sqlite_sys) + sqlite_user + sqlite_sys;
      bare = kernel_and_sqlite + 2 * livez_user;
      printf "HTTP side'"'"'s kernel time + SQLite'"'"'s threads: %.0f us per vote, %.1f /livez requests; ",
        kernel_and_sqlite, kernel_and_sqlite / (livez_user + livez_sys);
      printf "with two /livez requests'"'"' user time: %.0f us, %.1f /livez requests\n",
        bare, bare / (livez_user + livez_sys);
    }'
}

# Prints the CPU per vote of the servers ($2 ms) and of PostgreSQL +
# Redis ($3 ms) over $4 votes, labelled $1.
per_vote() {
  awk -v label="$1" -v s="$2" -v b="$3" -v n="$4" 'BEGIN {
    if (n > 0) printf "%s: server CPU %.0f us per vote, PostgreSQL + Redis %.0f us per vote (%d votes)\n", label, s * 1000 / n, b * 1000 / n, n;
  }'
}

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
    "$@" $(server_cmd) serve \
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
    peak=$(peak_rss_until_done "$sim" "$before")
    wait "$sim" || true
    cat "$data_dir/fanout.txt"
    echo "server RSS: ${before} KiB before, ${peak} KiB at most with $watchers watchers:" \
      "$(( (peak - before) / watchers )) KiB per SSE connection"
    ;;
  vote-floor)
    # Target 1 against its floor: the same voters and /livez first against
    # target/release/fanout-floor committing each vote to a SQLite file of
    # its own (WAL, synchronous=FULL, Oponn's vote key and receipt index,
    # grouped commits; cargo build --release -p fanout-floor), then against
    # Oponn; each one's CPU per vote and per /livez, and Oponn's per vote
    # as a multiple of the floor's.
    floor_out=$(mktemp)
    data_dir=$(mktemp -d)
    start_floor 1741 "$data_dir/floor.db"
    echo "floor:"
    ballot_args=(--ballot=floor)
    cpu_per_request | tee "$floor_out"
    stop_server
    ballot_args=()
    echo "oponn:"
    start_server
    cpu_per_request | tee "$floor_out.oponn"
    per_vote_us() { sed -n 's/^server CPU: \([0-9]*\) us per vote.*/\1/p' "$1"; }
    awk -v f="$(per_vote_us "$floor_out")" -v o="$(per_vote_us "$floor_out.oponn")" 'BEGIN {
      if (f > 0) printf "server CPU per vote: oponn %d us, floor %d us: %.2fx the floor\n", o, f, o / f }'
    rm -f "$floor_out" "$floor_out.oponn"
    ;;
  fanout-floor)
    # The same watchers and the same one vote against target/release/fanout-floor
    # (cargo build --release -p fanout-floor: it only holds the connections and
    # writes one frame of Oponn's size to each), then against Oponn.
    watchers=${WATCHERS:-10000}
    start_floor
    echo "floor:"
    floor_p99=$(load --url "$URL" --ballot=floor --voters 1 --concurrency 1 --watchers "$watchers" \
      | tee /dev/stderr | sed -n 's/^watcher delivery: .* p99 \([0-9.]*\)ms.*/\1/p')
    stop_server
    echo "oponn:"
    start_server
    oponn_p99=$(load --url "$URL" --voters 1 --concurrency 1 --watchers "$watchers" \
      | tee /dev/stderr | sed -n 's/^watcher delivery: .* p99 \([0-9.]*\)ms.*/\1/p')
    awk -v o="$oponn_p99" -v f="$floor_p99" -v n="$watchers" \
      'BEGIN { printf "delivery p99 to %d watchers: oponn %.1f ms, floor %.1f ms: %.2fx the floor\n", n, o, f, o / f }'
    ;;
  watchers)
    # Target 4's curve of watchers: for each count of WATCHER_COUNTS, one
    # vote to that many watchers, from the floor program and then from
    # Oponn, with their delivery p99, its cost per watcher and Oponn's
    # RSS per connection. Both servers and the load generator each hold
    # one descriptor per watcher: a count over the open-file limit (less a
    # margin for the rest) is capped to it, and the cap is printed.
    limit=$(ulimit -Hn)
    [ "$limit" = unlimited ] && limit=1048576
    ulimit -Sn "$limit" 2> /dev/null || true
    cap=$(( limit - 256 ))
    p99_of() { sed -n 's/^watcher delivery: .* p99 \([0-9.]*\)ms.*/\1/p' "$1"; }
    rows=""
    for asked in ${WATCHER_COUNTS:-1000 10000 50000}; do
      n=$asked
      if [ "$n" -gt "$cap" ]; then
        echo "$asked watchers capped to $cap: the open-file limit is $limit (ulimit -Hn)"
        n=$cap
      fi
      out=$(mktemp)
      start_floor
      load --url "$URL" --ballot=floor --voters 1 --concurrency 1 --watchers "$n" > "$out" || true
      floor_p99=$(p99_of "$out")
      stop_server
      start_server
      before=$(rss_kib "$server_pid")
      load --url "$URL" --voters 1 --concurrency 1 --watchers "$n" > "$out" &
      sim=$!
      peak=$(peak_rss_until_done "$sim" "$before")
      wait "$sim" || true
      grep -E '^(watchers:|watcher pairs|tally check)' "$out"
      oponn_p99=$(p99_of "$out")
      stop_server
      rm -f "$out"
      rows+=$(awk -v n="$n" -v f="${floor_p99:-0}" -v o="${oponn_p99:-0}" -v b="$before" -v p="$peak" 'BEGIN {
        printf "%d | %.1f ms | %.1f ms | %.2fx | %.1f us | %.1f KiB\n", n, f, o, (f > 0 ? o / f : 0), o * 1000 / n, (p - b) / n
      }')$'\n'
    done
    echo "watchers | floor p99 | Oponn p99 | ratio | Oponn p99 per watcher | Oponn RSS per connection"
    printf '%s' "$rows"
    ;;
  peer)
    # The original Python service (github.com/fwilkerson/oponn), in its
    # in-memory mode, then Oponn's embedded default: the same tool, the same
    # voters and watchers, back to back. PEER_DIR is a checkout of it with a
    # virtual environment in .venv, made outside this repository
    # (BENCHMARKS.md, "Reproduce"). It has no /livez: its floor is its
    # cheapest page.
    peer_dir=${PEER_DIR:?set PEER_DIR to a checkout of fwilkerson/oponn with its .venv}
    (cd "$peer_dir" && exec env OPONN_ENV=development $(if [ -n "${SERVER_CPUS:-}" ]; then echo "taskset -c $SERVER_CPUS"; fi) \
      .venv/bin/uvicorn src.main:app --host 127.0.0.1 --port "$PORT" --log-level warning) > /dev/null 2>&1 &
    server_pid=$!
    until curl -fs "$URL/create" > /dev/null 2>&1; do sleep 0.05; done
    echo "the original service:"
    load --url "$URL" --voters "${VOTERS:-5000}" --concurrency "${CONCURRENCY:-32}" --watchers 20 --target both \
      --floor-path '/partials/start-time-input?start_time_type=now' | grep -v '^\['
    stop_server
    echo "oponn:"
    start_server
    load --url "$URL" --voters "${VOTERS:-5000}" --concurrency "${CONCURRENCY:-32}" --watchers 20 --target both | grep -v '^\['
    ;;
  profile)
    # A CPU profile of the server taking votes: the server runs under perf.
    # PROFILE_CALL_GRAPH picks perf's call graphs (default -g, frame
    # pointers; "--call-graph dwarf,16384" unwinds Rust frames too, costlier).
    out=${PROFILE:-/tmp/oponn-votes.perf}
    data_dir=$(mktemp -d)
    env OPONN_BIND="127.0.0.1:$PORT" OPONN_DATA_DIR="$data_dir" RUST_LOG=warn \
      OPONN_BALLOTS_PER_MINUTE=0 OPONN_WRITE_INS_PER_MINUTE=0 OPONN_STREAMS_PER_MINUTE=0 \
      perf record -F ${PROFILE_HZ:-499} ${PROFILE_CALL_GRAPH:--g} -o "$out" -- "$BIN" serve > "$data_dir/log" 2>&1 &
    until curl -fs "$URL/livez" > /dev/null 2>&1; do sleep 0.05; done
    "$BIN" simulate --url "$URL" --voters "${VOTERS:-15000}" --concurrency "${CONCURRENCY:-32}" --ballots "${BALLOTS:-1}"
    pkill -INT -f "$BIN serve" || true
    wait || true
    perf report -i "$out" --no-children --sort dso --stdio -g none 2> /dev/null | grep '%' | head -5
    perf report -i "$out" --no-children --sort comm --stdio -g none 2> /dev/null | grep '%' | head -3
    ;;
  instructions)
    # The server's user-space instructions per vote and per /livez
    # request, counted by callgrind: the same from run to run where CPU
    # time varies by ±10 % (a shared machine), so a change of a few
    # percent shows. System calls' kernel time is not in it; `cpu` has it.
    # Under callgrind the server runs one thread at a time and some 50
    # times slower, so the counts are small (VOTERS, by default 2,000).
    command -v callgrind_control > /dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
    data_dir=$(mktemp -d)
    out="$data_dir/callgrind.out"
    env OPONN_BIND="127.0.0.1:$PORT" OPONN_DATA_DIR="$data_dir" RUST_LOG=warn \
      OPONN_BALLOTS_PER_MINUTE=0 OPONN_WRITE_INS_PER_MINUTE=0 OPONN_STREAMS_PER_MINUTE=0 \
      valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" serve > "$data_dir/log" 2>&1 &
    server_pid=$!
    until curl -fs "$URL/livez" > /dev/null 2>&1; do
      kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/log" >&2; exit 1; }
      sleep 0.1
    done
    WARMUP_VOTERS=${WARMUP_VOTERS:-200} warm_up "$URL"
    # Each dump writes the counts since the one before to a file of its
    # own, numbered from 1. A dump that fails, or leaves no total, stops
    # the run rather than letting an older file stand in for it.
    dumps=0 total_ir=""
    dump_total() {
      dumps=$(( dumps + 1 ))
      callgrind_control -d "$server_pid" > /dev/null || { echo "callgrind_control could not dump the counts" >&2; exit 1; }
      total_ir=$(sed -n 's/^totals: //p' "$out.$dumps" 2> /dev/null || true)
      [ -n "$total_ir" ] || { echo "no instruction total in $out.$dumps" >&2; exit 1; }
    }
    dump_total
    load --url "$URL" --voters "${VOTERS:-2000}" --concurrency "${CONCURRENCY:-32}" --ballots "${BALLOTS:-1}" \
      --target votes > "$data_dir/votes.txt" || true
    dump_total; vote_ir=$total_ir
    load --url "$URL" --concurrency "${CONCURRENCY:-32}" --target livez --duration "${LIVEZ_SECONDS:-5}s" \
      > "$data_dir/livez.txt" || true
    dump_total; livez_ir=$total_ir
    [ -n "${CALLGRIND_KEEP:-}" ] && cp "$out".* "$CALLGRIND_KEEP"/
    cat "$data_dir/votes.txt" "$data_dir/livez.txt"
    acked=$(sed -n 's/^votes acknowledged: \([0-9]*\) of .*/\1/p' "$data_dir/votes.txt")
    answered=$(sed -n 's/^\/livez: \([0-9]*\) answered.*/\1/p' "$data_dir/livez.txt")
    awk -v v="$vote_ir" -v n="${acked:-0}" -v l="$livez_ir" -v m="${answered:-0}" 'BEGIN {
      if (n <= 0 || m <= 0) { print "no vote acknowledged or no /livez request answered: nothing to divide by"; exit 1 }
      printf "server instructions: %.0f per vote (%d votes), %.0f per /livez request (%d)\n", v / n, n, l / m, m;
      printf "a vote runs %.1f /livez requests of instructions\n", (v / n) / (l / m);
    }'
    ;;
  cpu)
    start_server
    cpu_per_request
    ;;
  cpu-pg)
    db_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    name="oponn_bench_$(date +%s)"
    psql "$db_url" -q -c "create database $name"
    start_server DATABASE_URL="${db_url%/*}/$name" REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
    cpu_per_request backends
    stop_server
    psql "$db_url" -q -c "drop database $name"
    ;;
  cluster)
    # Two instances on one PostgreSQL + Redis, CONCURRENCY/2 voters each on
    # one ballot, then one instance with all CONCURRENCY voters on another:
    # the cross-instance tail against one instance's, and the combined
    # tally checked against every acknowledged vote.
    db_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
    name="oponn_bench_$(date +%s)"
    psql "$db_url" -q -c "create database $name"
    shared=(DATABASE_URL="${db_url%/*}/$name" REDIS_URL="$redis_url" OPONN_SECRET_KEY="bench-cluster-secret-of-some-length-0123456789")
    start_server "${shared[@]}"
    first_pid=$server_pid first_dir=$data_dir
    second_port=$(( PORT + 1 ))
    second_dir=$(mktemp -d)
    # The same data directory: both read the local key file the first wrote
    # (the database is PostgreSQL's, so nothing else in it is shared).
    env OPONN_BIND="127.0.0.1:$second_port" OPONN_DATA_DIR="$first_dir" RUST_LOG=warn \
      OPONN_BALLOTS_PER_MINUTE=0 OPONN_WRITE_INS_PER_MINUTE=0 OPONN_STREAMS_PER_MINUTE=0 \
      "${shared[@]}" $(server_cmd) serve > "$second_dir/log" 2>&1 &
    second_pid=$!
    until curl -fs "http://127.0.0.1:$second_port/livez" > /dev/null 2>&1; do sleep 0.01; done
    half=$(( ${CONCURRENCY:-32} / 2 ))
    voters=${VOTERS:-6000}
    ballot=$(curl -fs -H 'Content-Type: application/json' -d '{"measure":"cluster bench","options":["a","b","c","d"],"window_minutes":0}' \
      "$URL/api/v1/ballots" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    # Each run also checks the tally against its own votes alone, which the
    # other instance's votes make differ: the combined check below counts.
    warm_up "$URL" "$half" & warm_up "http://127.0.0.1:$second_port" "$half"; wait $!
    c0=$(cpu_ms "$first_pid" "$second_pid"); b0=$(backends_cpu_ms)
    load --url "$URL" --ballot="$ballot" --voters $(( voters / 2 )) --concurrency "$half" > "$first_dir/a.txt" || true &
    a=$!
    load --url "http://127.0.0.1:$second_port" --ballot="$ballot" --voters $(( voters / 2 )) --concurrency "$half" > "$second_dir/b.txt" || true &
    b=$!
    wait "$a" "$b" || true
    c1=$(cpu_ms "$first_pid" "$second_pid"); b1=$(backends_cpu_ms)
    for f in "$first_dir/a.txt" "$second_dir/b.txt"; do grep -E '^(oponn simulate|votes acknowledged|vote POST latency|vote errors|  )' "$f"; done
    tail -5 "$second_dir/log"
    acked=$(cat "$first_dir/a.txt" "$second_dir/b.txt" | sed -n 's/^votes acknowledged: \([0-9]*\) of.*/\1/p' | awk '{s+=$1} END {print s+0}')
    total=$(curl -fs "$URL/api/v1/ballots/$ballot/tally" | grep -o '"total":[0-9]*' | head -1 | cut -d: -f2)
    echo "two instances: server total $total, votes acknowledged $acked: $([ "$total" = "$acked" ] && echo OK || echo MISMATCH)"
    per_vote "two instances" $(( c1 - c0 )) $(( b1 - b0 )) "$acked"
    kill "$second_pid" 2>/dev/null || true; wait "$second_pid" 2>/dev/null || true; rm -rf "$second_dir"
    echo "one instance, the same total concurrency:"
    c0=$(cpu_ms "$first_pid"); b0=$(backends_cpu_ms)
    load --url "$URL" --voters "$voters" --concurrency $(( half * 2 )) > "$first_dir/one.txt" || true
    c1=$(cpu_ms "$first_pid"); b1=$(backends_cpu_ms)
    grep -E '^(votes acknowledged|vote POST latency|tally check)' "$first_dir/one.txt"
    per_vote "one instance" $(( c1 - c0 )) $(( b1 - b0 )) \
      "$(sed -n 's/^votes acknowledged: \([0-9]*\) of.*/\1/p' "$first_dir/one.txt")"
    stop_server
    psql "$db_url" -q -c "drop database $name"
    ;;
  startup)
    start_server
    echo "cold start: ${start_ms} ms from exec to the first /livez answer (embedded default, new data dir)"
    echo "idle RSS: $(rss_kib "$server_pid") KiB"
    ;;
  *)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
