#!/usr/bin/env bash
# What the response cache saves and what it costs:
#   get          GET of a 64-byte JSON body on a proxied route without `cache`;
#   get_hit      the same GET on a route with `cache: true`, answered from the cache (the
#                upstream is not involved);
#   big          GET of a 1 MiB body on the route without `cache`;
#   big_hit      the same 1 MiB GET answered from the cache;
# as requests per Portico CPU-second (target: get_hit ≥ 1.5 × get). Then memory: 100,000
# distinct 4 KiB responses stored, Portico's RSS growth against their bodies' bytes (target
# ≤ 1.3×). Portico (workers: 1) on cpu0; wrk and the upstream (nginx) on cpu1. The method of
# ../shared/bench: -t1, a warm-up, interleaved rounds in rotating order, medians, Portico's
# CPU read from /proc.
#
#   bench/cache.sh                      # 5 rounds of 10 s
#   bench/cache.sh --rounds 3 --duration 4
#   bench/cache.sh --memory-only --entries 100000
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-cache-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SERVER_CPU=0
LOAD_CPU=1
PORT=28495
UPSTREAM_PORT=28496
ENTRIES=100000
MEMORY_ONLY=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    --entries) ENTRIES="$2"; shift 2;;
    --memory-only) MEMORY_ONLY=1; shift;;
    -h|--help) sed -n '2,17p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp" "$WORK/www"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

head -c $((1 << 20)) /dev/urandom > "$WORK/www/big"
head -c 4096 /dev/urandom > "$WORK/www/4k"
{
  nginx_prelude "$WORK" upstream
  cat <<CONF
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        add_header Cache-Control "max-age=3600";
        location ~ ^/(plain|cached)/small\$ { default_type application/json; return 200 '{"ok":true,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}\n'; }
        location ~ ^/(plain|cached)/big\$ { root $WORK/www; try_files /big =404; }
        location ~ ^/fill/ { root $WORK/www; try_files /4k =404; }
    }
}
CONF
} > "$WORK/upstream.conf"
cat > "$WORK/portico.yaml" <<CONF
listen: 127.0.0.1:$PORT
workers: 1
access_log: off
cache: {memory: 2GiB}
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
routes:
  - {name: plain, path: "/plain/{*rest}", methods: [GET], upstream: up}
  - {name: cached, path: "/cached/{*rest}", methods: [GET], upstream: up, cache: {max_entry_bytes: 2MiB}}
  - {name: fill, path: "/fill/{*rest}", methods: [GET], upstream: up, cache: true}
CONF
"$BIN" check-config "$WORK/portico.yaml"

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
PID[portico]=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plain/small" && break; sleep 0.1; done

BASE="http://127.0.0.1:$PORT"
declare -A URL=( [get]="$BASE/plain/small" [get_hit]="$BASE/cached/small"
                 [big]="$BASE/plain/big" [big_hit]="$BASE/cached/big" )
TARGETS=(get get_hit big big_hit)
run_wrk() {  # target conns seconds [--latency]
  local t=$1 c=$2 d=$3; shift 3
  taskset -c $LOAD_CPU wrk -t1 -c"$c" -d"$d" "$@" "${URL[$t]}"
}
# The cached targets are hits: the first request stores, the next is answered from the cache.
for t in get_hit big_hit; do
  curl -s -o /dev/null "${URL[$t]}"
  status=$(curl -s -o /dev/null -D - "${URL[$t]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}')
  [[ "$status" == *"; hit"* ]] || { echo "$t is not a hit: $status" >&2; exit 1; }
done

printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
(( MEMORY_ONLY )) && ROUNDS=0
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    conns=$CONNS
    [[ $t == big* ]] && conns=8
    run_wrk "$t" "$conns" "${WARMUP}s" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[portico]}" "$DURATION" "$raw" run_wrk "$t" "$conns" "${DURATION}s" --latency)
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done
(( MEMORY_ONLY )) || python3 "$REPO/bench/summary.py" "$WORK/results.tsv" get_hit:get big_hit:big

# Memory: ENTRIES distinct 4 KiB responses, each stored once, one after the other on one
# keep-alive connection.
before=$(tree_rss_kib "${PID[portico]}")
taskset -c $LOAD_CPU python3 - "$PORT" "$ENTRIES" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(1, n + 1):
    conn.request("GET", f"/fill/{i}")
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"/fill/{i}: {r.status}")
PY
after=$(tree_rss_kib "${PID[portico]}")
last=$(curl -s -o /dev/null -D - "$BASE/fill/$ENTRIES" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}')
[[ "$last" == *"; hit"* ]] || { echo "entry $ENTRIES is not stored: $last" >&2; exit 1; }
python3 - "$before" "$after" "$ENTRIES" <<'PY'
import sys
before, after, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bodies = n * 4096 / 1024
grown = after - before
print(f"\n{n} entries of 4096 bytes: bodies {bodies / 1024:.0f} MiB, RSS grew {grown / 1024:.0f} MiB "
      f"({before / 1024:.0f} → {after / 1024:.0f} MiB): {grown / bodies:.2f}× their bodies' bytes")
PY
