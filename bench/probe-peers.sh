#!/usr/bin/env bash
# `portico probe` against Portico, nginx and HAProxy, each a reverse proxy in front of the
# same origin (an nginx serving a JSON document and a file), side by side: one column per
# peer, one line per row, as docs/probe.md records it. nginx and HAProxy come from Debian
# (installed here when missing); Portico is this checkout's debug build.
#
#   bench/probe-peers.sh                 # the table, on stdout
#   bench/probe-peers.sh --json DIR      # also each peer's JSON report in DIR
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
WORK="${BENCH_WORK:-/tmp/portico-probe-peers}"
JSON_DIR=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --json) JSON_DIR="$2"; shift 2;;
    -h|--help) sed -n '2,9p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy >/dev/null
fi
cargo build --quiet --manifest-path "$REPO/Cargo.toml" --bin portico
PORTICO="$REPO/target/debug/portico"

rm -rf "$WORK" && mkdir -p "$WORK/www/v1" "$WORK/tmp"
printf '{"items":[1,2,3]}\n' > "$WORK/www/v1/items"
head -c 4096 /dev/zero | tr '\0' 'x' > "$WORK/www/v1/file.txt"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ORIGIN=$(free_port) NGINX=$(free_port) HAPROXY=$(free_port) PPORT=$(free_port)
cat > "$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    client_header_timeout 5s;
    server {
        listen 127.0.0.1:$ORIGIN;
        root $WORK/www;
        location = /v1/items { default_type application/json; }
    }
    server {
        listen 127.0.0.1:$NGINX;
        location / { proxy_pass http://127.0.0.1:$ORIGIN; }
    }
}
EOF
nginx -c "$WORK/nginx.conf" &
pids+=($!)
cat > "$WORK/haproxy.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 5s
frontend f
    bind 127.0.0.1:$HAPROXY
    default_backend b
backend b
    server s 127.0.0.1:$ORIGIN
EOF
haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
pids+=($!)
cat > "$WORK/portico.yaml" <<EOF
listen: 127.0.0.1:$PPORT
access_log: off
limits: {header_timeout: 5s}
upstreams:
  - {name: origin, targets: ["http://127.0.0.1:$ORIGIN"]}
routes:
  - {name: items, path: /v1/items, methods: [GET], upstream: origin, produces: [application/json]}
  - {name: file, path: /v1/file.txt, methods: [GET], upstream: origin, cache: true}
EOF
"$PORTICO" serve --config "$WORK/portico.yaml" > "$WORK/portico.log" 2>&1 &
pids+=($!)
for p in $ORIGIN $NGINX $HAPROXY $PPORT; do wait_port "$p"; done

for peer in "portico:$PPORT" "nginx:$NGINX" "haproxy:$HAPROXY"; do
  name="${peer%%:*}" port="${peer##*:}"
  "$PORTICO" probe "http://127.0.0.1:$port" --path /v1/items --path /v1/file.txt --unsafe \
    --timeout 3s --format json > "$WORK/$name.json" || true
done
[[ -z "$JSON_DIR" ]] || { mkdir -p "$JSON_DIR"; cp "$WORK"/{portico,nginx,haproxy}.json "$JSON_DIR"; }

python3 - "$WORK" "$(nginx -v 2>&1 | sed 's/.*\///')" "$(haproxy -v | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')" <<'PY'
import json, sys
work, nginx, haproxy = sys.argv[1:4]
peers = [("portico", "Portico"), ("nginx", f"nginx {nginx}"), ("haproxy", f"HAProxy {haproxy}")]
reports = {k: json.load(open(f"{work}/{k}.json")) for k, _ in peers}
mark = {"pass": "pass", "fail": "**fail**", "not applicable": "n/a", "unknown": "unknown"}
print("| row | check | " + " | ".join(n for _, n in peers) + " |")
print("|---|---|" + "---|" * len(peers))
for i, row in enumerate(reports["portico"]):
    cells = []
    for k, _ in peers:
        r = reports[k][i]
        cell = mark[r["outcome"]]
        if r["outcome"] != "pass":
            cell += f": {r['why']}"
        cells.append(cell.replace("|", "\\|"))
    code = row["code"] or "all"
    print(f"| {code} | {row['check']} | " + " | ".join(cells) + " |")
print()
for k, n in peers:
    got = [r["outcome"] for r in reports[k]]
    print(f"- {n}: {got.count('pass')} pass, {got.count('fail')} fail, "
          f"{got.count('not applicable')} not applicable, {got.count('unknown')} unknown")
PY
