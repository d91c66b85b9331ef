#!/bin/sh
# Two sets of nos-built kernels side by side (issue 15: a kernel change
# that costs boot time is a trade-off to state): the example HTTP app
# built by one nos in two homes, one whose kernel cache is OLD (a
# directory of built kernels, e.g. a copy made with cp -al before a
# change) and one whose cache is NEW, then ROUNDS rounds interleaved of
# `nos run -d` → first HTTP answer at -m MEM under TCG. Prints each run
# and the medians.
#   make bench-kernels OLD=/tmp/kernels-before NEW=~/.local/share/nos/cache/kernels-built
set -u
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
NOS=${NOS:-$(pwd)/bin/nos}
ROUNDS=${ROUNDS:-7}
MEM=${MEM:-64}
: "${OLD:?bench-kernels: OLD=DIR, a directory of built kernels, is needed}"
NEW=${NEW:-$HOME/.local/share/nos/cache/kernels-built}
command -v curl >/dev/null || { echo "bench-kernels: curl is needed (apt-get install curl)"; exit 1; }
homes=""
for k in "$OLD" "$NEW"; do
	[ -d "$k" ] || { echo "bench-kernels: $k is not a directory of built kernels"; exit 1; }
	h=$(mktemp -d /tmp/nos-bench-kernels.XXXXXX)
	mkdir -p "$h/cache"
	ln -s "$(cd "$k" && pwd)" "$h/cache/kernels-built"
	homes="$homes $h"
done
set -- $homes
hold=$1 hnew=$2
trap 'for h in $hold $hnew; do for i in $(NOS_HOME=$h $NOS ps -aq 2>/dev/null); do NOS_HOME=$h $NOS rm -f "$i" >/dev/null 2>&1; done; rm -rf "$h"; done' EXIT
for h in $hold $hnew; do
	NOS_HOME=$h $NOS build -t example ./examples/httpserver || exit 1
	echo "$h: kernel $(NOS_HOME=$h $NOS kernel ls | awk '$1 == "*" {print $2}')"
done
port=18680
once() { # once HOME: ms from run -d to the first answer
	t0=$(ms)
	id=$(NOS_HOME=$1 $NOS run -d --accel tcg -m "${MEM}M" -p 127.0.0.1:$port:8080 example) || exit 1
	await $port 3000 || { echo "no answer"; exit 1; }
	echo $(($(ms) - t0))
	NOS_HOME=$1 $NOS rm -f "$id" >/dev/null
}
a="" b=""
r=1
while [ "$r" -le "$ROUNDS" ]; do
	x=$(once "$hold") y=$(once "$hnew")
	echo "round $r: old $x ms, new $y ms"
	a="$a $x" b="$b $y"
	r=$((r + 1))
done
ma=$(echo "$a" | median) mb=$(echo "$b" | median)
echo "median run -d → first answer: old kernels $ma ms, new kernels $mb ms, ratio $(awk "BEGIN {printf \"%.2f\", $mb / $ma}")"
