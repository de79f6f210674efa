#!/usr/bin/env bash
# What checking requests against an OpenAPI document costs: requests per Portico CPU-second on
#   post         POST of a 1 KiB JSON body on a plain proxied route (`consumes` only);
#   post_schema  the same POST on a route from a document whose body schema has 20
#                properties (the body read whole, parsed and validated);
#   get          GET with three query parameters on a plain proxied route;
#   get_params   the same GET on a route from a document that validates the three
#                (an integer with bounds, a string with a pattern, a boolean).
# Targets: post_schema ≥ 0.8 × post, get_params ≥ 0.9 × get. Portico (workers: 1) on cpu0;
# wrk and the upstream (nginx, 64 bytes) on cpu1. The method of ../shared/bench: -t1 -c50, a
# warm-up, interleaved rounds in rotating order, medians, Portico's CPU read from /proc.
#
#   bench/openapi.sh                      # 5 rounds of 10 s
#   bench/openapi.sh --rounds 3 --duration 4
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-openapi-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SERVER_CPU=0
LOAD_CPU=1
PORT=28493
UPSTREAM_PORT=28494

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    -h|--help) sed -n '2,14p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

nginx_upstream_64 "$WORK" $UPSTREAM_PORT > "$WORK/upstream.conf"
# The document: one POST whose body has 20 properties of every kind, one GET with three
# query parameters.
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
# Twenty properties of the common kinds: text (some with a pattern), whole numbers with
# bounds, numbers, enums and booleans.
props = {}
for i in range(8):
    props[f"text{i}"] = {"type": "string", "minLength": 1, "maxLength": 128}
for i in range(2):
    props[f"code{i}"] = {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4,12}$"}
for i in range(4):
    props[f"count{i}"] = {"type": "integer", "minimum": 0, "maximum": 1000000}
props["price"] = {"type": "number", "exclusiveMinimum": 0}
props["ratio"] = {"type": "number", "minimum": 0, "maximum": 1}
for i in range(2):
    props[f"kind{i}"] = {"type": "string", "enum": ["alpha", "beta", "gamma", "delta"]}
for i in range(2):
    props[f"flag{i}"] = {"type": "boolean"}
assert len(props) == 20
doc = {
    "openapi": "3.1.0",
    "info": {"title": "bench", "version": "1"},
    "paths": {
        "/items": {
            "post": {
                "operationId": "create",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": list(props)[:10], "additionalProperties": False,
                    "properties": props}}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}},
            },
            "get": {
                "operationId": "list",
                "parameters": [
                    {"name": "limit", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "q", "in": "query", "schema": {"type": "string", "pattern": "^[a-z]{1,20}$"}},
                    {"name": "deep", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}},
            },
        }
    },
}
json.dump(doc, open(f"{work}/api.json", "w"))
body = {}
for i in range(8):
    body[f"text{i}"] = f"description of part {i}: "
for i in range(2):
    body[f"code{i}"] = f"EU-{1234567 + i}"
for i in range(4):
    body[f"count{i}"] = 1000 * (i + 1)
body["price"] = 129.95
body["ratio"] = 0.25
body["kind0"], body["kind1"] = "gamma", "alpha"
body["flag0"], body["flag1"] = True, False
text = json.dumps(body, separators=(",", ":"))
# About 1 KiB: the texts padded (each within its maxLength).
for i in range(8):
    pad = 1024 - len(text)
    if pad <= 0:
        break
    body[f"text{i}"] += "x" * min(pad, 128 - len(body[f"text{i}"]))
    text = json.dumps(body, separators=(",", ":"))
open(f"{work}/body.json", "w").write(text)
PY
cat > "$WORK/portico.yaml" <<CONF
listen: 127.0.0.1:$PORT
workers: 1
access_log: off
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
routes:
  - {name: plain, path: /plain/items, methods: [GET, POST], upstream: up, consumes: [application/json]}
  - {name: doc, path: /doc, openapi: api.json, upstream: up}
CONF
"$BIN" check-config "$WORK/portico.yaml"
BODY_LEN=$(wc -c < "$WORK/body.json")
echo "body: $BODY_LEN bytes" >&2
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
body = open(f"{work}/body.json").read().replace("\\", "\\\\").replace("'", "\\'")
open(f"{work}/post.lua", "w").write(
    "wrk.method = 'POST'\nwrk.body = '" + body + "'\nwrk.headers['Content-Type'] = 'application/json'\n")
PY

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
PID[portico]=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plain/items" && break; sleep 0.1; done

BASE="http://127.0.0.1:$PORT"
QUERY="limit=20&q=shoes&deep=true"
declare -A URL=( [post]="$BASE/plain/items" [post_schema]="$BASE/doc/items"
                 [get]="$BASE/plain/items?$QUERY" [get_params]="$BASE/doc/items?$QUERY" )
declare -A SCRIPT=( [post]="$WORK/post.lua" [post_schema]="$WORK/post.lua" [get]="" [get_params]="" )
TARGETS=(post post_schema get get_params)
run_wrk() {  # target conns seconds [--latency]
  local t=$1 c=$2 d=$3; shift 3
  local script=()
  [[ -z "${SCRIPT[$t]}" ]] || script=(-s "${SCRIPT[$t]}")
  taskset -c $LOAD_CPU wrk -t1 -c"$c" -d"$d" "${script[@]}" "$@" "${URL[$t]}"
}
# Every target answers 200: a body or parameter the document refused would be a 4xx here.
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

python3 "$REPO/bench/summary.py" "$WORK/results.tsv" post_schema:post get_params:get
