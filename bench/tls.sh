#!/usr/bin/env bash
# TLS front-end benchmark: Portico, nginx and HAProxy terminating TLS (same ECDSA P-256
# certificate, TLS 1.3) and proxying to the rig's upstream (../shared/bench/upstream) over
# HTTP/1.1 keep-alive, by the rig's method: the proxy pinned to cpu0, load and upstream pinned to
# cpu1, interleaved rounds in rotating order, medians, proxy CPU read from /proc.
#
#   bench/tls.sh                    # 5 rounds: h2 over TLS (h2load) and HTTP/1.1 over TLS (wrk)
#   bench/tls.sh --rounds 3 --duration 10
#
# Load: h2 `h2load -t1 -c10 -m10` (the rig's h2c shape), h1 `wrk -t1 -c50`; 64-byte answers,
# each after an unmeasured 2 s warm-up on the same URL. Each proxy has one worker and no
# access log. Nothing is written in the repository; everything goes to $BENCH_WORK (default
# /tmp/portico-tls-bench; the rig's upstream is built with its own Cargo.lock into $BENCH_WORK-target).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
RIG="${BENCH_RIG:-$REPO/../shared/bench}"
WORK="${BENCH_WORK:-/tmp/portico-tls-bench}"
ROUNDS=5
DURATION=10
WARMUP=2
SERVER_CPU=0
LOAD_CPU=1
PORT_BASE=28290

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds|--duration) bench_option "$1" "$2"; shift 2;;
    -h|--help) sed -n '2,14p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

require_tools "wrk nghttp2-client nginx haproxy" wrk h2load taskset nginx haproxy openssl curl python3

rm -rf "$WORK"; mkdir -p "$WORK/raw" "$WORK/nginx-tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"

(cd "$REPO" && cargo build --release -q --bin portico)
# Built beside $WORK, not in it, so that the next run does not build it again.
(cd "$RIG" && CARGO_TARGET_DIR="$WORK-target" cargo build --release -q -p bench-upstream)
UPSTREAM_BIN="$WORK-target/release/bench-upstream"

UP=$PORT_BASE
declare -A PORT=( [portico]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3)) )
TARGETS=(portico nginx haproxy)

cat > "$WORK/portico.yaml" <<EOF
listen: 127.0.0.1:$((PORT_BASE + 11))
tls:
  listen: 127.0.0.1:${PORT[portico]}
  cert: $WORK/cert.pem
  key: $WORK/key.pem
workers: 1
access_log: off
upstreams:
  - name: bench
    targets: ["http://127.0.0.1:$UP"]
routes:
  - name: all
    path: /{*path}
    methods: [GET, HEAD, POST, PUT, PATCH, DELETE]
    upstream: bench
EOF
{ nginx_prelude "$WORK" nginx; cat <<EOF
    upstream up {
        server 127.0.0.1:$UP;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} > "$WORK/nginx.conf"
cat > "$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK/haproxy.pem alpn h2,http/1.1
    default_backend be
backend be
    server up 127.0.0.1:$UP
EOF

declare -A PID=()
cleanup() { for p in "${PID[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c $LOAD_CPU "$UPSTREAM_BIN" --addr "127.0.0.1:$UP" --threads 1 >"$WORK/upstream.log" 2>&1 &
PID[upstream]=$!
taskset -c $SERVER_CPU "$REPO/target/release/portico" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
PID[portico]=$!
taskset -c $SERVER_CPU nginx -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
PID[nginx]=$!
taskset -c $SERVER_CPU haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PID[haproxy]=$!

for t in "${TARGETS[@]}"; do
  url="https://127.0.0.1:${PORT[$t]}/"
  for _ in $(seq 100); do
    curl -sk -o /dev/null "$url" && break
    sleep 0.1
  done
  for v in --http1.1 --http2; do
    got=$(curl -sk "$v" -o /dev/null -w '%{http_code} %{size_download} %{http_version}' "$url")
    want="200 64 $([[ $v == --http2 ]] && echo 2 || echo 1.1)"
    [[ "$got" == "$want" ]] || { echo "$t $v: expected '$want', got '$got'" >&2; exit 1; }
  done
done

load() {  # phase url duration
  case "$1" in
    h2) echo "taskset -c $LOAD_CPU h2load -t1 -c10 -m10 -D$3 $2";;
    h1) echo "taskset -c $LOAD_CPU wrk -t1 -c50 -d$3s --latency $2";;
  esac
}

printf 'phase\ttarget\tround\trps\tcpu_pct\trss_kib\n' > "$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for phase in h2 h1; do
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
      t=${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}
      url="https://127.0.0.1:${PORT[$t]}/"
      # shellcheck disable=SC2046
      $(load "$phase" "$url" "$WARMUP") >/dev/null 2>&1
      raw="$WORK/raw/$phase-$t-r$r.txt"
      # shellcheck disable=SC2046
      read -r cpu rss < <(measure "${PID[$t]}" "$DURATION" "$raw" $(load "$phase" "$url" "$DURATION"))
      if [[ $phase == h2 ]]; then
        rps=$(awk '/^finished in/ {print $4}' "$raw")
        # "requests: T total, S started, D done, OK succeeded, F failed, E errored, ..."
        bad=$(awk '/^requests:/ {print ($8 > 0 && $10 == 0 && $12 == 0) ? 0 : 1}
                   /^status codes:/ {print ($5 + $7 + $9 == 0) ? 0 : 1}' "$raw" | sort -u | tr -d '\n')
        [[ "$bad" == 0 ]] || { echo "$t h2: failures in $raw" >&2; cat "$raw" >&2; exit 1; }
      else
        rps=$(awk '/^Requests\/sec/ {print $2}' "$raw")
        if grep -q -e 'Non-2xx' -e 'Socket errors' "$raw"; then
          echo "$t h1: errors in $raw" >&2; cat "$raw" >&2; exit 1
        fi
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$t" "$r" "$rps" "$cpu" "$rss" >> "$WORK/results.tsv"
      echo "round $r $phase $t: $rps req/s, proxy CPU ${cpu}%" >&2
    done
  done
done

python3 - "$WORK/results.tsv" "$ROUNDS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
print(f"# TLS front end, 64 B answers, {sys.argv[2]} rounds (median); proxy on cpu0, load + upstream on cpu1")
print()
print("| phase | target | rps | spread | proxy CPU | k req per proxy CPU-s | vs nginx | vs HAProxy | RSS under load |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for phase, name in (("h2", "h2 over TLS (h2load -c10 -m10)"), ("h1", "HTTP/1.1 over TLS (wrk -c50)")):
    summary = {}
    for t in ("portico", "nginx", "haproxy"):
        rs = [r for r in rows if r['phase'] == phase and r['target'] == t]
        rps = [float(r['rps']) for r in rs]
        eff = [float(r['rps']) / max(float(r['cpu_pct']), 1e-9) * 100 / 1000 for r in rs]
        summary[t] = dict(
            rps=statistics.median(rps),
            spread=(max(rps) - min(rps)) / 2 / statistics.median(rps) * 100,
            cpu=statistics.median(float(r['cpu_pct']) for r in rs),
            eff=statistics.median(eff),
            rss=max(int(r['rss_kib']) for r in rs) / 1024,
        )
    for t, s in summary.items():
        print(f"| {name} | {t} | {s['rps']:,.0f} | ±{s['spread']:.1f}% | {s['cpu']:.0f}% | {s['eff']:.1f} | "
              f"{s['eff'] / summary['nginx']['eff']:.2f} | {s['eff'] / summary['haproxy']['eff']:.2f} | {s['rss']:.1f} MiB |")
EOF
