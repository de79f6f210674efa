#!/usr/bin/env bash
# Builds portico-h2spec (main.go here) against the h2spec library whose source
# ../shared/tools/h2spec keeps, with Debian's Go and Go library packages only (no Go module
# proxy is reachable). Reuses OUT when it is newer than main.go.
#
#   tools/h2spec/build.sh target/tools/portico-h2spec
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUT_BINARY}"
src="${H2SPEC_SRC:-$here/../../../shared/tools/h2spec}"
if [[ -x "$out" && "$out" -nt "$here/main.go" ]]; then
  exit 0
fi
[[ -f "$src/h2spec.go" ]] || { echo "no h2spec source at $src" >&2; exit 1; }
pkgs="golang golang-github-fatih-color-dev golang-github-spf13-cobra-dev golang-github-spf13-pflag-dev
      golang-golang-x-net-dev golang-github-mattn-go-isatty-dev golang-github-mattn-go-colorable-dev"
# shellcheck disable=SC2086
dpkg -s $pkgs >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; }
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
lib="$gopath/src/github.com/summerwind/h2spec"
mkdir -p "$(dirname "$lib")" "$(dirname "$out")"
cp -r "$src" "$lib"
chmod -R u+w "$lib"
mkdir -p "$lib/cmd/portico-h2spec"
cp "$here/main.go" "$lib/cmd/portico-h2spec/main.go"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
(cd "$lib" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= go build -o "$out" ./cmd/portico-h2spec)
