#!/usr/bin/env bash
# Static-file benchmark: Portico's `handler: static` against nginx serving the same file,
# by the method of ../shared/bench (see its README): the server pinned to cpu0, wrk pinned to
# cpu1 (-t1 -c50, 10 s after a 2 s warm-up), interleaved rounds with rotating order, the
# median shown, and the server's CPU read from /proc so that requests per CPU-second can be
# compared even when the load core saturates first.
#
#   bench/static.sh                 # 5 rounds, 16 KiB file
#   bench/static.sh --rounds 7 --size 16384 --duration 10
#   bench/static.sh --extra inline=/tmp/portico-inline   # another Portico build beside it (A/B)
#
# nginx runs twice: with its default `sendfile off`, and with `sendfile on` (what most
# production configurations set). Both have one worker and no access log, like Portico here.
# Nothing is written in the repository; everything goes to $BENCH_WORK (default
# /tmp/portico-static-bench).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-static-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
CONNS=50
SIZE=16384
SERVER_CPU=0
LOAD_CPU=1
PORT_BASE=28190
EXTRA=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration|--conns) bench_option "$1" "$2"; shift 2;;
    --size) SIZE="$2"; shift 2;;
    --extra) EXTRA+=("$2"); shift 2;;
    -h|--help) sed -n '2,16p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

require_tools "wrk nginx curl" wrk taskset nginx curl python3

rm -rf "$WORK"; mkdir -p "$WORK/root" "$WORK/raw" "$WORK/nginx-tmp"
python3 -c "import sys; sys.stdout.buffer.write((b'{\"pad\":\"' + b'x' * ($SIZE - 11) + b'\"}\n'))" > "$WORK/root/file.json"
[[ $(stat -c %s "$WORK/root/file.json") == "$SIZE" ]] || { echo "file is not $SIZE bytes" >&2; exit 1; }

(cd "$REPO" && cargo build --release -q --bin portico)
BIN="$REPO/target/release/portico"

declare -A PORT=( [portico]=$PORT_BASE [nginx]=$((PORT_BASE + 1)) [nginx-sendfile]=$((PORT_BASE + 2)) )
declare -A PBIN=( [portico]="$BIN" )
TARGETS=(portico nginx nginx-sendfile)
for e in "${EXTRA[@]}"; do
  name=${e%%=*}; PBIN[$name]=${e#*=}; PORT[$name]=$((PORT_BASE + 3 + ${#TARGETS[@]})); TARGETS+=("$name")
done

portico_conf() {  # name
  cat > "$WORK/$1.yaml" <<EOF
listen: 127.0.0.1:${PORT[$1]}
workers: 1
access_log: off
routes:
  - name: files
    path: /{*file}
    handler: static
    root: $WORK/root
EOF
}
nginx_conf() {  # name port sendfile
  { nginx_prelude "$WORK" "$1"; cat <<EOF
    default_type application/octet-stream;
    types { application/json json; }
    sendfile $3;
    server {
        listen 127.0.0.1:$2;
        root $WORK/root;
    }
}
EOF
  } > "$WORK/$1.conf"
}
nginx_conf nginx "${PORT[nginx]}" off
nginx_conf nginx-sendfile "${PORT[nginx-sendfile]}" on

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

for t in "${!PBIN[@]}"; do
  portico_conf "$t"
  taskset -c $SERVER_CPU "${PBIN[$t]}" serve --config "$WORK/$t.yaml" >"$WORK/$t.log" 2>&1 &
  PID[$t]=$!
done
taskset -c $SERVER_CPU nginx -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
PID[nginx]=$!
taskset -c $SERVER_CPU nginx -e "$WORK/nginx-sendfile-error.log" -c "$WORK/nginx-sendfile.conf" &
PID[nginx-sendfile]=$!

for t in "${TARGETS[@]}"; do
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:${PORT[$t]}/file.json" && break
    sleep 0.1
  done
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:${PORT[$t]}/file.json")
  [[ "$got" == "200 $SIZE" ]] || { echo "$t: expected '200 $SIZE', got '$got'" >&2; exit 1; }
done

printf 'target\tround\trps\tp50\tp99\tserver_cpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#TARGETS[@]}; i++)); do
    t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
    url="http://127.0.0.1:${PORT[$t]}/file.json"
    taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    raw="$WORK/raw/$t-r$r.txt"
    read -r cpu rss < <(measure "${PID[$t]}" "$DURATION" "$raw" \
      taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url")
    record_run "$WORK" "$t" "$r" "$raw" "$cpu" "$rss"
  done
done

python3 - "$WORK/results.tsv" "$ROUNDS" "$SIZE" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
def ms(v):
    v = v.strip()
    for unit, f in (('ms', 1), ('us', 1e-3), ('s', 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float(v)
targets = []
for r in rows:
    if r['target'] not in targets:
        targets.append(r['target'])
summary = {}
for t in targets:
    rs = [r for r in rows if r['target'] == t]
    rps = [float(r['rps']) for r in rs]
    eff = [float(r['rps']) / max(float(r['server_cpu_pct']), 1e-9) * 100 / 1000 for r in rs]
    summary[t] = dict(
        rps=statistics.median(rps),
        spread=(max(rps) - min(rps)) / 2 / statistics.median(rps) * 100,
        p50=statistics.median(ms(r['p50']) for r in rs),
        p99=statistics.median(ms(r['p99']) for r in rs),
        cpu=statistics.median(float(r['server_cpu_pct']) for r in rs),
        eff=statistics.median(eff),
        rss=max(int(r['rss_kib']) for r in rs) / 1024,
    )
print(f"# static file, {sys.argv[3]} bytes, {sys.argv[2]} rounds (median); wrk -t1 -c50 on cpu1, server on cpu0")
print()
print("| target | rps | spread | p50 | p99 | server CPU | k req per server CPU-s | vs nginx (CPU-s) | vs nginx sendfile (CPU-s) | RSS under load |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in targets:
    s = summary[t]
    print(f"| {t} | {s['rps']:,.0f} | ±{s['spread']:.1f}% | {s['p50']:.2f} ms | {s['p99']:.2f} ms | {s['cpu']:.0f}% | "
          f"{s['eff']:.1f} | {s['eff'] / summary['nginx']['eff']:.2f} | {s['eff'] / summary['nginx-sendfile']['eff']:.2f} | {s['rss']:.1f} MiB |")
EOF
