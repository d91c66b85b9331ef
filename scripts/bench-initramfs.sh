#!/bin/sh
# The initramfs LZ4-compressed (what nos build writes for kernels that
# unpack LZ4) or gzip'd (NOS_INITRAMFS_COMPRESSION=gzip, what it wrote
# before), side by side: the example HTTP app built both ways on this
# machine's default kernel, then ROUNDS rounds interleaved of `nos run -d`
# → first HTTP answer at -m MEM under TCG, and the layer sizes. Prints
# each run and the medians.
#   make bench-initramfs   (ROUNDS=9 MEM=256)
set -u
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
NOS=${NOS:-$(pwd)/bin/nos}
ROUNDS=${ROUNDS:-9}
MEM=${MEM:-256}
command -v curl >/dev/null || { echo "bench-initramfs: curl is needed (apt-get install curl)"; exit 1; }
privhome bench-initramfs
$NOS build -t lz4 ./examples/httpserver || exit 1
NOS_INITRAMFS_COMPRESSION=gzip $NOS build -t gzip ./examples/httpserver || exit 1
for t in lz4 gzip; do
	echo "$t: initramfs layer $($NOS inspect "$t" | grep -A2 '"application/vnd.nos.initramfs' | grep -o '"size": [0-9]*') bytes"
done
once() { firstanswer "$1" 18680 "$MEM"; }
a="" b=""
r=1
while [ "$r" -le "$ROUNDS" ]; do
	x=$(once lz4) y=$(once gzip)
	echo "round $r: lz4 $x ms, gzip $y ms"
	a="$a $x" b="$b $y"
	r=$((r + 1))
done
ma=$(echo "$a" | median) mb=$(echo "$b" | median)
echo "median run -d → first answer: lz4 $ma ms, gzip $mb ms, lz4/gzip $(awk "BEGIN {printf \"%.2f\", $ma / $mb}")"
