#!/bin/sh
# TCG's translation buffer (QEMU's -accel tcg,tb-size=N, issue 15): for
# each size, interleaved round by round in one run, the example HTTP app
# as a detached instance on nos's default kernel: time from `nos run -d`
# to the first HTTP answer, QEMU's RSS and PSS once idle (5 s after the
# first answer), and wrk's request rate for 10 s (the guest's code paths
# translated again when the buffer is too small to hold them).
#   make bench-tcg-buffer   (SIZES="0 16 32 64 128" ROUNDS=3; 0 is QEMU's default)
set -u
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"0 16 32 64 128"}
ROUNDS=${ROUNDS:-3}
NOS=${NOS:-bin/nos}
command -v wrk >/dev/null || { echo "bench-tcg-buffer needs wrk (apt-get install wrk)"; exit 1; }
img=nos-bench-tcgbuf
$NOS build -t $img ./examples/httpserver >/dev/null || exit 1
trap '$NOS rm -f tcgbuf >/dev/null 2>&1; $NOS rmi $img >/dev/null 2>&1' EXIT
now() { date +%s.%N; }
port=18190
for r in $(seq "$ROUNDS"); do
	for n in $SIZES; do
		port=$((port + 1))
		t0=$(now)
		NOS_TCG_BUFFER_MIB=$n $NOS run -d --name tcgbuf -p 127.0.0.1:$port:8080 $img >/dev/null || exit 1
		i=0
		until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
			i=$((i + 1))
			[ $i -gt 600 ] && { echo "size $n: no answer"; exit 1; }
			sleep 0.05
		done
		t1=$(now)
		sleep 5
		q=$(pgrep -f "qemu-system-x86_64.*tcgbuf" | head -1)
		[ -z "$q" ] && q=$(pgrep -n qemu-system-x86)
		rss=$(awk '/^Rss:/{print $2}' /proc/"$q"/smaps_rollup)
		pss=$(awk '/^Pss:/{print $2}' /proc/"$q"/smaps_rollup)
		rps=$(wrk -t1 -c4 -d10s "http://127.0.0.1:$port/" 2>/dev/null | awk '/^Requests\/sec/{print $2}')
		rss2=$(awk '/^Rss:/{print $2}' /proc/"$q"/smaps_rollup)
		echo "round $r tb-size ${n} MiB: first answer $(echo "$t1 - $t0" | bc) s, QEMU idle RSS $rss KiB PSS $pss KiB, $rps requests/s, RSS after load $rss2 KiB"
		$NOS rm -f tcgbuf >/dev/null
	done
done
