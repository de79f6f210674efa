#!/usr/bin/env bash
# The public HTTP caching test suite (http-cache-tests, https://cache-tests.fyi, pinned) run
# against Portico, nginx and HAProxy in one go, each a cache in front of the suite's own
# origin, and summarised side by side: required tests failed (by the suite's own rules:
# a test whose dependency failed is a dependency failure, not its own), optimal ones failed,
# tests passed. The table goes to stdout, as docs/cache.md records it; the raw results to
# $WORK.
#
#   bench/cache-tests.sh                  # needs node, nginx, haproxy; builds Portico (debug)
#   bench/cache-tests.sh --portico target/release/portico
#
# nginx: proxy_cache with proxy_cache_revalidate (the suite's own docker setup); HAProxy: its
# cache with process-vary (2.6's defaults otherwise); Portico: `cache: true`, every default.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
VERSION=0.4.5
WORK="${BENCH_WORK:-/tmp/portico-cache-tests}"
PORTICO=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --portico) PORTICO="$2"; shift 2;;
    -h|--help) sed -n '2,13p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
require_tools "nodejs npm nginx haproxy" node npm nginx haproxy python3
PKG="${PORTICO_HTTP_CACHE_TESTS:-$REPO/target/http-cache-tests-$VERSION/node_modules/http-cache-tests}"
if [[ ! -f "$PKG/cli.mjs" ]]; then
  dir="$REPO/target/http-cache-tests-$VERSION"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "http-cache-tests@$VERSION"
  PKG="$dir/node_modules/http-cache-tests"
fi
if [[ -z "$PORTICO" ]]; then
  cargo build --quiet --manifest-path "$REPO/Cargo.toml" --bin portico
  PORTICO="$REPO/target/debug/portico"
fi

rm -rf "$WORK" && mkdir -p "$WORK"/{nginx/cache,nginx/tmp,nginx/body}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT


ORIGIN=$(free_port)
(cd "$PKG" && npm_config_port=$ORIGIN npm_config_protocol=http npm_config_pidfile="$WORK/origin.pid" \
  exec node server/server.mjs >"$WORK/origin.log" 2>&1) &
pids+=($!)
wait_port "$ORIGIN"

P_PORT=$(free_port)
cat >"$WORK/portico.yaml" <<EOF
listen: 127.0.0.1:$P_PORT
access_log: off
upstreams:
  - {name: origin, targets: ["http://127.0.0.1:$ORIGIN"]}
routes:
  - name: all
    path: /{*rest}
    methods: [GET, POST, PUT, DELETE, PATCH]
    upstream: origin
    cache: true
EOF
"$PORTICO" serve --config "$WORK/portico.yaml" >"$WORK/portico.log" 2>&1 &
pids+=($!)

N_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
    access_log off;
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;
    proxy_temp_path $WORK/nginx/tmp;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$N_PORT;
        location / {
            proxy_pass http://127.0.0.1:$ORIGIN;
            proxy_cache my-cache;
            proxy_cache_revalidate on;
        }
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
pids+=($!)

H_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
cache c
    total-max-size 64
    max-object-size 1048576
    max-age 86400
    process-vary on
frontend f
    bind 127.0.0.1:$H_PORT
    default_backend b
backend b
    http-request cache-use c
    http-response cache-store c
    server s 127.0.0.1:$ORIGIN
EOF
haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
pids+=($!)

runs=()
for target in "portico:$P_PORT" "nginx:$N_PORT" "haproxy:$H_PORT"; do
  name="${target%%:*}" port="${target##*:}"
  wait_port "$port"
  (cd "$PKG" && npm_config_base="http://127.0.0.1:$port" npm_package_config_id="" \
    node --no-warnings cli.mjs >"$WORK/$name.json" 2>"$WORK/$name.err")
  runs+=("$name=$WORK/$name.json")
done
node "$REPO/bench/http-cache-tests/summarize.mjs" "$PKG" "${runs[@]}" >"$WORK/summary.json"

python3 - "$WORK/summary.json" "$VERSION" "$(nginx -v 2>&1 | sed 's/.*\///')" "$(haproxy -v | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
version, nginx, haproxy = sys.argv[2:5]
names = {"portico": "Portico", "nginx": f"nginx {nginx}", "haproxy": f"HAProxy {haproxy}"}
print(f"http-cache-tests {version}, {next(iter(summary.values()))['tests']} tests\n")
print("| cache | required failed | optimal failed | dependency failed | setup failed | passed |")
print("|---|---|---|---|---|---|")
for key, s in summary.items():
    print(f"| {names[key]} | {len(s['required_failures'])} | {s['optimal_failures']} | "
          f"{s['dependency_failures']} | {s['setup_failures']} | {s['passed']} |")
print()
for key, s in summary.items():
    print(f"{names[key]} fails: {', '.join(s['required_failures']) or 'none'}\n")
EOF
