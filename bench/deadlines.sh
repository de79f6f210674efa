#!/usr/bin/env bash
# What deadlines and idempotency keys cost: requests per Portico CPU-second on
#   plain     GET of a plain proxied route;
#   deadline  the same GET with a client deadline (?timeout=30s: parsed, the remaining time
#             written upstream, the exchange under a timer);
#   post      POST of a small JSON body on a plain proxied route;
#   idem      the same POST on a route with `idempotency: true`, each with a new key (body
#             read whole, the key claimed and the response kept: two writes to the store);
#   replay    the same POST with one key over and over (a read of the store, no upstream).
# The store is SQLite (the default) in $BENCH_WORK. Portico (workers: 1) on cpu0; wrk and the
# upstream (nginx, 64 bytes) on cpu1. The method of ../shared/bench: -t1 -c50, a warm-up,
# interleaved rounds in rotating order, medians, Portico's CPU read from /proc.
#
#   bench/deadlines.sh                    # 5 rounds of 10 s
#   bench/deadlines.sh --rounds 8 --duration 4
#   bench/deadlines.sh --storage postgres://postgres@127.0.0.1:5432/portico_bench
#                                         # keys kept in PostgreSQL instead (the database
#                                         # must exist; its tables are made if needed)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-deadlines-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SERVER_CPU=0
LOAD_CPU=1
PORT=28393
UPSTREAM_PORT=28394
STORAGE=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    --storage) STORAGE="$2"; shift 2;;
    -h|--help) sed -n '2,19p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

nginx_upstream_64 "$WORK" $UPSTREAM_PORT > "$WORK/upstream.conf"
cat > "$WORK/portico.yaml" <<CONF
listen: 127.0.0.1:$PORT
workers: 1
access_log: off
storage: ${STORAGE:-sqlite://$WORK/portico.db}
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
routes:
  - {name: plain, path: /plain, methods: [GET, POST], upstream: up}
  - {name: deadline, path: /deadline, methods: [GET], upstream: up, max_timeout: 60s}
  - {name: idem, path: /idem, methods: [POST], upstream: up, idempotency: true}
CONF
# POST bodies: one fixed, for post and replay; one with a new key per request, for idem.
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$WORK/replay.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = '"bench-replay"'
LUA
cat > "$WORK/idem.lua" <<'LUA'
local n = 0
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  return wrk.format("POST", "/idem", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = '"' .. run .. "-" .. n .. '"',
  }, '{"n":1}')
end
LUA

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
PID[portico]=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plain" && break; sleep 0.1; done

BASE="http://127.0.0.1:$PORT"
declare -A URL=( [plain]="$BASE/plain" [deadline]="$BASE/deadline?timeout=30s" [post]="$BASE/plain"
                 [idem]="$BASE/idem" [replay]="$BASE/idem" )
declare -A SCRIPT=( [plain]="" [deadline]="" [post]="$WORK/post.lua" [idem]="$WORK/idem.lua"
                    [replay]="$WORK/replay.lua" )
TARGETS=(plain deadline post idem replay)
run_wrk() {  # target conns seconds [--latency]
  local t=$1 c=$2 d=$3; shift 3
  local script=()
  [[ -z "${SCRIPT[$t]}" ]] || script=(-s "${SCRIPT[$t]}")
  taskset -c $LOAD_CPU wrk -t1 -c"$c" -d"$d" "${script[@]}" "$@" "${URL[$t]}"
}
# The replayed key is used once first: after that every request with it is a replay (while
# the first is in flight, the others would be 409).
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
  -H 'Idempotency-Key: "bench-replay"' -d '{"n":1}' "$BASE/idem"
for t in "${TARGETS[@]}"; do
  got=$(run_wrk "$t" 4 1s 2>&1 | awk '/Non-2xx/ {print "non-2xx"}')
  [[ -z "$got" ]] || { echo "$t: the route does not answer 200" >&2; exit 1; }
done

printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    run_wrk "$t" "$CONNS" "${WARMUP}s" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[portico]}" "$DURATION" "$raw" run_wrk "$t" "$CONNS" "${DURATION}s" --latency)
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done

python3 "$REPO/bench/summary.py" "$WORK/results.tsv" deadline:plain idem:post replay:post
