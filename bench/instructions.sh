#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic where the proxy rig's
# throughput spreads ±10-20% on this shared machine, so two builds can be compared by a few
# percent. For each binary, Portico (workers: 1, no access log) runs under callgrind in front
# of nginx (64 bytes); h2load sends N1 then N2 requests (10 connections, 10 streams each,
# HTTP/1.1 or h2c), each to a fresh Portico; (Ir(N2) - Ir(N1)) / (N2 - N1) leaves start-up
# out. Valgrind runs code some 50 times slower, so it counts work, not time.
#
#   bench/instructions.sh                               # target/release/portico
#   bench/instructions.sh before=/path/to/old/portico after=target/release/portico
#   bench/instructions.sh --n1 2000 --n2 6000 after=target/release/portico
#   bench/instructions.sh off=target/release/portico@off.yaml on=target/release/portico@on.yaml
#
# A build given as BIN@FILE runs with FILE's lines added to the configuration (top-level
# keys such as `metrics:` or `tracing:`), to count what a setting costs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-instructions-bench}"
N1=4000
N2=12000
PORT=28395
UPSTREAM_PORT=28396
BINS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --n1) N1="$2"; shift 2;;
    --n2) N2="$2"; shift 2;;
    -h|--help) sed -n '2,16p' "$0"; exit 0;;
    *=*) BINS+=("$1"); shift;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "valgrind nghttp2-client nginx curl" valgrind callgrind_annotate h2load nginx curl taskset
if [[ ${#BINS[@]} -eq 0 ]]; then
  (cd "$REPO" && cargo build --release -q --bin portico)
  BINS=("portico=$REPO/target/release/portico")
fi

rm -rf "$WORK"; mkdir -p "$WORK/nginx-tmp"
nginx_upstream_64 "$WORK" $UPSTREAM_PORT > "$WORK/upstream.conf"
cat > "$WORK/portico.yaml" <<CONF
listen: 127.0.0.1:$PORT
workers: 1
access_log: off
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
routes:
  - {name: all, path: "/{*path}", methods: [GET], upstream: up}
CONF
taskset -c 1 nginx -c "$WORK/upstream.conf" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/" && break; sleep 0.1; done

# Instructions Portico runs to start, answer `n` requests over `proto`, and stop.
instructions() {  # bin proto n [extra-config]
  local out="$WORK/callgrind.out" flag="" config="$WORK/portico.yaml"
  [[ "$2" == h1 ]] && flag="--h1"
  if [[ -n "${4:-}" ]]; then
    config="$WORK/extra.yaml"
    cat "$WORK/portico.yaml" "$4" > "$config"
  fi
  rm -f "$out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" serve --config "$config" \
    >/dev/null 2>"$WORK/valgrind.err" &
  local pid=$!
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
  taskset -c 1 h2load $flag -t1 -c10 -m10 -n "$3" "http://127.0.0.1:$PORT/" > "$WORK/h2load.out"
  grep -q "$3 succeeded" "$WORK/h2load.out" || { echo "not every request succeeded" >&2; cat "$WORK/h2load.out" >&2; exit 1; }
  kill -INT "$pid"; wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

echo "| build | HTTP/1.1 Ir per request | h2c Ir per request |"
echo "|---|---:|---:|"
for entry in "${BINS[@]}"; do
  label="${entry%%=*}"; bin="${entry#*=}"; extra=""
  if [[ "$bin" == *@* ]]; then extra="${bin#*@}"; bin="${bin%%@*}"; fi
  row="| $label"
  for proto in h1 h2; do
    a=$(instructions "$bin" "$proto" "$N1" "$extra")
    b=$(instructions "$bin" "$proto" "$N2" "$extra")
    row="$row | $(( (b - a) / (N2 - N1) ))"
  done
  echo "$row |"
done
