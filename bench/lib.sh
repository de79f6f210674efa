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
