#!/bin/sh
# The app in the initramfs or on a root disk (nos build --root-disk), side
# by side: the example HTTP app built both ways on this machine's default
# kernels, then ROUNDS rounds interleaved of `nos run -d` → first HTTP
# answer at -m MEM under TCG, and the image sizes. Prints each run and the
# medians. (Minimum memory of both: LAYOUTS="initramfs root-disk" make
# bench-memory.)
#   make bench-layout   (ROUNDS=7 MEM=64)
set -u
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
NOS=${NOS:-$(pwd)/bin/nos}
ROUNDS=${ROUNDS:-7}
MEM=${MEM:-64}
command -v curl >/dev/null || { echo "bench-layout: curl is needed (apt-get install curl)"; exit 1; }
privhome bench-layout
$NOS build -t initramfs ./examples/httpserver || exit 1
$NOS build --root-disk -t root-disk ./examples/httpserver || exit 1
$NOS images
once() { firstanswer "$1" 18580 "$MEM"; }
a="" b=""
r=1
while [ "$r" -le "$ROUNDS" ]; do
	x=$(once initramfs) y=$(once root-disk)
	echo "round $r: initramfs $x ms, root disk $y ms"
	a="$a $x" b="$b $y"
	r=$((r + 1))
done
ma=$(echo "$a" | median) mb=$(echo "$b" | median)
echo "median run -d → first answer: initramfs $ma ms, root disk $mb ms, ratio $(awk "BEGIN {printf \"%.2f\", $mb / $ma}")"
