#!/usr/bin/env bash
# What authentication costs: one Portico proxying four routes to the same upstream, with
# `auth: none`, `auth: api_key`, `auth: token` (a token from the token service, kept in
# memory: no store here) and `auth: signature` (every request signed, its signature checked), by the method of ../shared/bench: Portico pinned to cpu0, wrk and the upstream
# (nginx, answering 64 bytes) pinned to cpu1, -t1 -c50, 10 s after a 2 s warm-up, interleaved
# rounds with rotating order, the median shown, and Portico's CPU read from /proc so that
# requests per CPU-second compare even when the load core saturates first.
#
#   bench/auth.sh                 # 5 rounds
#   bench/auth.sh --rounds 3 --duration 10
#   bench/auth.sh --rounds 20 --duration 4 --targets "none_signed signature"   # pairs only
#
# The signed route's requests all carry one signature made at the start (valid for 15
# minutes, so keep the run shorter than that): the cost measured is the gateway's check,
# which is the same for every request. `none_signed` sends those same signed headers to the
# open route (which ignores them), so that `signature` is also compared with the very same
# request bytes, parsed and forwarded, minus the check. Nothing is written in the repository; everything goes
# to $BENCH_WORK (default /tmp/portico-auth-bench).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-auth-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
CHOSEN=()
SERVER_CPU=0
LOAD_CPU=1
PORT=28290
UPSTREAM_PORT=28291
PROJECT=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
API_KEY=bench-api-key-0123456789abcdef
AK=AKBENCH01
SK=bench-secret-key-0123456789abcdef

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    --targets) read -r -a CHOSEN <<< "$2"; shift 2;;
    -h|--help) sed -n '2,20p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
if [[ ${#CHOSEN[@]} -eq 0 ]]; then
  CHOSEN=(none api_key token signature none_signed)
fi
if (( ROUNDS * ${#CHOSEN[@]} * (DURATION + WARMUP) > 800 )); then
  echo "the run would outlast the signature (15 minutes); use fewer rounds or a shorter duration" >&2
  exit 2
fi
require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

nginx_upstream_64 "$WORK" $UPSTREAM_PORT > "$WORK/upstream.conf"

cat > "$WORK/portico.yaml" <<EOF
listen: 127.0.0.1:$PORT
workers: 1
access_log: off
upstreams:
  - {name: up, targets: ["http://127.0.0.1:$UPSTREAM_PORT"]}
projects:
  - id: $PROJECT
    name: bench
    consumers:
      - {name: c, api_keys: ["$API_KEY"], access_keys: [{id: $AK, secret: "$SK"}], password: "bench-password-1"}
routes:
  - {name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens}
  - {name: token, path: "/v1/{project_id}/token", methods: [GET], upstream: up, auth: token}
  - {name: none, path: "/v1/{project_id}/none", methods: [GET], upstream: up}
  - {name: key, path: "/v1/{project_id}/key", methods: [GET], upstream: up, auth: api_key}
  - {name: signed, path: "/v1/{project_id}/signed", methods: [GET], upstream: up, auth: signature}
EOF

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf" &
PID[upstream]=$!
taskset -c $SERVER_CPU "$BIN" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
PID[portico]=$!

base="http://127.0.0.1:$PORT/v1/$PROJECT"
for _ in $(seq 100); do
  curl -s -o /dev/null "$base/none" && break
  sleep 0.1
done
mapfile -t SIGNED < <(PORTICO_SECRET_KEY="$SK" "$BIN" sign --access-key "$AK" "$base/signed")
TOKEN=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
  -d '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "c", "password": "bench-password-1"}}}, "scope": {"project": {"name": "bench"}}}}' \
  "http://127.0.0.1:$PORT/v3/auth/tokens" | awk -F': ' 'tolower($1)=="x-subject-token" {print $2}' | tr -d '\r')
[[ -n "$TOKEN" ]] || { echo "the token service gave no token" >&2; exit 1; }
declare -A URL=( [none]="$base/none" [api_key]="$base/key" [token]="$base/token" [signature]="$base/signed" [none_signed]="$base/none" )
declare -A HDR=( [none]="X-Bench: none" [api_key]="X-Api-Key: $API_KEY" [token]="X-Auth-Token: $TOKEN" )
TARGETS=("${CHOSEN[@]}")

wrk_run() {  # target duration [--latency]
  local t=$1 d=$2; shift 2
  if [[ $t == signature || $t == none_signed ]]; then
    taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${d}s" -H "${SIGNED[0]}" -H "${SIGNED[1]}" "$@" "${URL[$t]}"
  else
    taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${d}s" -H "${HDR[$t]}" "$@" "${URL[$t]}"
  fi
}

for t in "${TARGETS[@]}"; do
  got=$(wrk_run "$t" 1 2>&1 | awk '/Non-2xx/ {print "non-2xx"}')
  [[ -z "$got" ]] || { echo "$t: the route does not answer 200" >&2; exit 1; }
done

printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    wrk_run "$t" "$WARMUP" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[portico]}" "$DURATION" "$raw" wrk_run "$t" "$DURATION" --latency)
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done

# Each against the open route; `signature` also against the same request bytes unchecked.
pairs=()
for t in "${TARGETS[@]}"; do
  [[ $t == none ]] || pairs+=("$t:none")
done
[[ " ${TARGETS[*]} " == *" signature "* && " ${TARGETS[*]} " == *" none_signed "* ]] \
  && pairs+=("signature:none_signed")
[[ " ${TARGETS[*]} " == *" none "* ]] || pairs=("signature:none_signed")
python3 "$REPO/bench/summary.py" "$WORK/results.tsv" "${pairs[@]}"
