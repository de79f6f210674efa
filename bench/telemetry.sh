#!/usr/bin/env bash
# What metrics and tracing cost on the proxy rig's HTTP/1.1 64-byte row: requests per Portico
# CPU-second of the same build, proxying GET / to a 64-byte upstream, with
#   off       `metrics: {enabled: false}`, no `tracing`;
#   metrics   metrics on (the default), no `tracing`;
#   tracing   `metrics: {enabled: false}` and `tracing: {sample_ratio: 0.01}`;
#   on        metrics on and `tracing: {sample_ratio: 0.01}`, exporting over OTLP/HTTP to a
#             collector that takes every batch (a small Python server on the load core), the
#             client sending no traceparent.
# Target: on ≥ 0.95 × off. Portico (workers: 1) on cpu0; wrk, the upstream (nginx) and the
# collector on cpu1. The method of ../shared/bench: -t1 -c50, a warm-up, interleaved rounds in
# rotating order, medians, Portico's CPU read from /proc.
#
#   bench/telemetry.sh                      # 5 rounds of 10 s
#   bench/telemetry.sh --rounds 3 --duration 4
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-telemetry-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SERVER_CPU=0
LOAD_CPU=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    -h|--help) sed -n '2,15p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"
UPSTREAM_PORT=$(free_port)
COLLECTOR_PORT=$(free_port)
TARGETS=(off metrics tracing on)
declare -A PORT=()
for t in "${TARGETS[@]}"; do PORT[$t]=$(free_port); done

nginx_upstream_64 "$WORK" "$UPSTREAM_PORT" > "$WORK/upstream.conf"
for t in "${TARGETS[@]}"; do
  {
    echo "listen: 127.0.0.1:${PORT[$t]}"
    echo "workers: 1"
    echo "access_log: off"
    if [[ $t == off || $t == tracing ]]; then
      echo "metrics: {enabled: false}"
    fi
    if [[ $t == tracing || $t == on ]]; then
      echo "tracing: {otlp_endpoint: 'http://127.0.0.1:$COLLECTOR_PORT', sample_ratio: 0.01}"
    fi
    echo "upstreams:"
    echo "  - {name: up, targets: ['http://127.0.0.1:$UPSTREAM_PORT']}"
    echo "routes:"
    echo "  - {name: all, path: '/{*rest}', methods: [GET], upstream: up}"
  } > "$WORK/$t.yaml"
  "$BIN" check-config "$WORK/$t.yaml"
done
# The collector: takes every OTLP/HTTP export (and counts the bytes, to show spans went).
cat > "$WORK/collector.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        with open(sys.argv[2], "a") as f:
            f.write(f"{n}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $LOAD_CPU python3 "$WORK/collector.py" "$COLLECTOR_PORT" "$WORK/exports.txt" &
PID[collector]=$!
for t in "${TARGETS[@]}"; do
  taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/$t.yaml" >"$WORK/$t.log" 2>&1 &
  PID[$t]=$!
done
for p in "$UPSTREAM_PORT" "$COLLECTOR_PORT" "${PORT[@]}"; do wait_port "$p"; done

run_wrk() {  # target conns seconds [--latency]
  local t=$1 c=$2 d=$3; shift 3
  taskset -c $LOAD_CPU wrk -t1 -c"$c" -d"$d" "$@" "http://127.0.0.1:${PORT[$t]}/"
}
printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    run_wrk "$t" "$CONNS" "${WARMUP}s" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[$t]}" "$DURATION" "$raw" run_wrk "$t" "$CONNS" "${DURATION}s" --latency)
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done

python3 "$REPO/bench/summary.py" "$WORK/results.tsv" on:off metrics:off tracing:off
exports=$(wc -l < "$WORK/exports.txt" 2>/dev/null || echo 0)
echo
echo "- the collector took $exports exports from \`tracing\` and \`on\`"
