#!/usr/bin/env bash
# The instruction-count guard that CI runs: callgrind's count of the instructions Portico runs
# per proxied request (bench/instructions.sh: HTTP/1.1 and h2c, 64 bytes from nginx), set
# against the committed baseline (bench/instructions-baseline.tsv). Fails when either grows by
# more than 5%, so throughput once won stays won; says so when either falls by more than 5%
# (then record the new figures with --update, in the commit that earned them).
#
# Counts are deterministic for a given build, toolchain and machine (two runs agree within
# 0.1%), unlike the proxy rig's requests per second.
#
#   bench/instructions-guard.sh             # check
#   bench/instructions-guard.sh --update    # record the current build's counts as the baseline
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASELINE="$REPO/bench/instructions-baseline.tsv"
TOLERANCE=5
N1=2000
N2=6000
update=false
[[ "${1:-}" == "--update" ]] && update=true

(cd "$REPO" && cargo build --release -q --bin portico)
row=$(bash "$REPO/bench/instructions.sh" --n1 $N1 --n2 $N2 "current=$REPO/target/release/portico" | grep '^| current')
h1=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$row")
h2=$(awk -F'|' '{gsub(/ /, "", $4); print $4}' <<<"$row")
[[ "$h1" =~ ^[0-9]+$ && "$h2" =~ ^[0-9]+$ ]] || { echo "no counts in: $row" >&2; exit 1; }

if $update; then
  printf 'path\tinstructions_per_request\nh1\t%s\nh2c\t%s\n' "$h1" "$h2" > "$BASELINE"
  echo "baseline recorded: h1 $h1, h2c $h2"
  exit 0
fi

status=0
for path in h1 h2c; do
  now=$([[ $path == h1 ]] && echo "$h1" || echo "$h2")
  base=$(awk -F'\t' -v p="$path" '$1 == p {print $2}' "$BASELINE")
  change=$(python3 -c "print(f'{($now - $base) / $base * 100:+.1f}')")
  echo "$path: $now instructions per request, baseline $base ($change%)"
  if python3 -c "import sys; sys.exit(0 if $now > $base * (1 + $TOLERANCE / 100) else 1)"; then
    echo "  more than $TOLERANCE% over the baseline: find what grew (bench/instructions.sh, callgrind_annotate)" >&2
    status=1
  elif python3 -c "import sys; sys.exit(0 if $now < $base * (1 - $TOLERANCE / 100) else 1)"; then
    echo "  more than $TOLERANCE% under the baseline: record it (bench/instructions-guard.sh --update)"
  fi
done
exit $status
