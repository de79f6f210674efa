# Helpers shared by the benchmark scripts (sourced): the CPU ticks and RSS of a process tree,
# read from /proc, so that a server's requests per CPU-second can be compared even when the
# load core saturates first.

tree_pids() {
  ps -e -o pid=,ppid= | awk -v r="$1" '{ kids[$2] = kids[$2] " " $1 }
    END { q[1]=r; n=1; i=1; while (i<=n) { p=q[i++]; print p; k=split(kids[p], a, " "); for (j=1;j<=k;j++) q[++n]=a[j] } }'
}
tree_ticks() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12+$13}' || true)
    sum=$((sum + ${v:-0}))
  done
  echo $sum
}
tree_rss_kib() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '$1=="VmRSS:" {print $2}' /proc/"$p"/status 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo $sum
}


# Runs a load command (pinned by the caller) with its output in RAW while sampling the server's
# process tree PID: CPU between 0 and DURATION - 0.3 s, RSS half-way. Prints "CPU% RSS_KiB".
measure() {  # pid duration raw cmd...
  local pid=$1 dur=$2 raw=$3 lp a s rss b e
  shift 3
  "$@" >"$raw" 2>&1 &
  lp=$!
  a=$(tree_ticks "$pid"); s=$(date +%s.%N)
  sleep "$(awk -v d="$dur" 'BEGIN{print d/2}')"
  rss=$(tree_rss_kib "$pid")
  sleep "$(awk -v d="$dur" 'BEGIN{print d/2 - 0.3}')"
  b=$(tree_ticks "$pid"); e=$(date +%s.%N)
  wait "$lp"
  awk -v a="$a" -v b="$b" -v s="$s" -v e="$e" -v r="$rss" 'BEGIN{printf "%.1f %s\n", (b-a)/(e-s), r}'
}

# The part of an nginx configuration every bench shares: one worker (the caller pins it), no
# access log, temp files under WORK, keep-alive never recycled. Ends inside `http {`; the
# caller writes the rest and the closing brace.
nginx_prelude() {  # work name
  cat <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $1/$2.pid;
error_log $1/$2-error.log error;
events { worker_connections 8192; use epoll; }
http {
    access_log off;
    client_body_temp_path $1/nginx-tmp/body;
    proxy_temp_path $1/nginx-tmp/proxy;
    fastcgi_temp_path $1/nginx-tmp/fastcgi;
    uwsgi_temp_path $1/nginx-tmp/uwsgi;
    scgi_temp_path $1/nginx-tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
EOF
}

# Appends one wrk run (its --latency output in RAW) to WORK/results.tsv as
# target, round, rps, p50, p99, server CPU %, RSS; a run with non-2xx answers or socket
# errors stops the bench.
record_run() {  # work target round raw cpu rss
  local work=$1 t=$2 r=$3 raw=$4 cpu=$5 rss=$6 rps p50 p99 non2xx errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$raw")
  p50=$(awk '$1=="50%" {print $2}' "$raw"); p99=$(awk '$1=="99%" {print $2}' "$raw")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$raw"); errs=$(awk '/Socket errors/ {print $0}' "$raw")
  [[ -z "$non2xx" && -z "$errs" ]] || { echo "$t: errors in $raw" >&2; cat "$raw" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$r" "$rps" "$p50" "$p99" "$cpu" "$rss" >> "$work/results.tsv"
  echo "round $r $t: $rps req/s, p99 $p99, server CPU ${cpu}%" >&2
}

# An nginx configuration for the benches' upstream: one worker answering every request with
# the same 64-byte JSON body on 127.0.0.1:PORT.
nginx_upstream_64() {  # work port
  nginx_prelude "$1" upstream
  cat <<CONF
    server {
        listen 127.0.0.1:$2;
        location / { default_type application/json; return 200 '{"ok":true,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}\n'; }
    }
}
CONF
}

# A port nothing listens on now, on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 10 s) until something listens on 127.0.0.1:PORT.
wait_port() {  # port
  for _ in $(seq 100); do
    if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; exit 1
}

# Fails, naming what to install, unless every tool is on PATH.
require_tools() {  # install-hint tool...
  local hint=$1 t; shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install $hint)" >&2; exit 1; }
  done
}

# The options the interleaved benches share: sets ROUNDS, DURATION or CONNS from `--rounds N`,
# `--duration S` or `--conns N`.
bench_option() {  # option value
  case "$1" in
    --rounds) ROUNDS="$2";;
    --duration) DURATION="$2";;
    --conns) CONNS="$2";;
  esac
}
