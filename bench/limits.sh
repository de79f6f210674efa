#!/usr/bin/env bash
# What rate limits cost: requests per Portico CPU-second on a route with a limit that is never
# hit, kept in the process (`local`) or in Redis (`redis`, `cluster.redis`), each against the
# same route without a limit on the same Portico (`none`, `none_c`), and the p99 the Redis
# round trip adds. Two Portico processes, both pinned to cpu0 and driven one at a time: one
# without `cluster` (none, local), one with it (none_c, redis). wrk, the upstream (nginx,
# 64 bytes) and Redis on cpu1. The method of ../shared/bench: -t1 -c50, a warm-up, interleaved
# rounds in rotating order, medians, Portico's CPU read from /proc.
#
#   bench/limits.sh                    # 5 rounds of 10 s
#   bench/limits.sh --rounds 8 --duration 4
#
# Redis is the machine's (PORTICO_BENCH_REDIS, default redis://127.0.0.1:6379). Nothing is
# written in the repository; everything goes to $BENCH_WORK (default /tmp/portico-limits-bench).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-limits-bench}"
REDIS="${PORTICO_BENCH_REDIS:-redis://127.0.0.1:6379}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SERVER_CPU=0
LOAD_CPU=1
PORT_LOCAL=28390
PORT_CLUSTER=28392
UPSTREAM_PORT=28391

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    -h|--help) sed -n '2,15p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "wrk nginx curl redis-tools" wrk taskset nginx curl python3 redis-cli
redis-cli -u "$REDIS" ping >/dev/null || { echo "Redis at $REDIS does not answer" >&2; exit 1; }
taskset -cp $LOAD_CPU "$(pgrep -o redis-server)" >/dev/null 2>&1 || true

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

nginx_upstream_64 "$WORK" $UPSTREAM_PORT > "$WORK/upstream.conf"

# A limit far above what the rig can send: it is checked on every request, never hit.
portico_config() {  # port cluster-line
  cat <<CONF
listen: 127.0.0.1:$1
workers: 1
access_log: off
$2
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
routes:
  - {name: none, path: /none, methods: [GET], upstream: up}
  - {name: limited-$RANDOM, path: /limited, methods: [GET], upstream: up, rate_limit: {key: ip, rate: 10000000/s}}
CONF
}
portico_config $PORT_LOCAL "" > "$WORK/local.yaml"
portico_config $PORT_CLUSTER "cluster: {redis: \"$REDIS\", budget: 50ms}" > "$WORK/cluster.yaml"

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/local.yaml" >"$WORK/local.log" 2>&1 &
PID[local]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/cluster.yaml" >"$WORK/cluster.log" 2>&1 &
PID[cluster]=$!
for port in $PORT_LOCAL $PORT_CLUSTER; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/none" && break; sleep 0.1; done
done

declare -A URL=( [none]="http://127.0.0.1:$PORT_LOCAL/none" [local]="http://127.0.0.1:$PORT_LOCAL/limited"
                 [none_c]="http://127.0.0.1:$PORT_CLUSTER/none" [redis]="http://127.0.0.1:$PORT_CLUSTER/limited" )
declare -A SERVER=( [none]=local [local]=local [none_c]=cluster [redis]=cluster )
TARGETS=(none local none_c redis)
for t in "${TARGETS[@]}"; do
  got=$(taskset -c $LOAD_CPU wrk -t1 -c4 -d1s "${URL[$t]}" 2>&1 | awk '/Non-2xx/ {print "non-2xx"}')
  [[ -z "$got" ]] || { echo "$t: the route does not answer 200" >&2; exit 1; }
done

printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${URL[$t]}" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[${SERVER[$t]}]}" "$DURATION" "$raw" \
      taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${URL[$t]}")
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done
grep -q "shared rate-limit store could not decide" "$WORK/cluster.log" && {
  echo "Redis failed to decide during the run (see $WORK/cluster.log)" >&2; exit 1; }

python3 "$REPO/bench/summary.py" "$WORK/results.tsv" local:none redis:none_c
