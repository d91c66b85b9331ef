#!/bin/sh
# Warm starts (issue 15, item 3): `nos run -d` of the example HTTP app to
# its first HTTP answer, booted cold and started from its saved state
# (--snapshot), ROUNDS rounds interleaved, in a nos home of its own, on
# this machine's default kernel, at -m MEM, under TCG. Prints each run,
# the medians, the ratio warm/cold, and the saved state's size and save
# time. Where a run's time goes: nos run until the monitor logs its
# start, until the VM started, until the answer.
#   make bench-snapshot   (ROUNDS=7 MEM=64)
set -u
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
NOS=${NOS:-$(pwd)/bin/nos}
ROUNDS=${ROUNDS:-7}
MEM=${MEM:-64}
command -v curl >/dev/null || { echo "bench-snapshot: curl is needed (apt-get install curl)"; exit 1; }
built=${NOS_BUILT_KERNELS:-$HOME/.local/share/nos/cache/kernels-built}
home=$(mktemp -d /tmp/nos-bench-snapshot.XXXXXX)
mkdir -p "$home/cache"
[ -d "$built" ] && ln -s "$built" "$home/cache/kernels-built"
export NOS_HOME="$home"
trap 'for i in $($NOS ps -aq 2>/dev/null); do $NOS rm -f "$i" >/dev/null 2>&1; done; rm -rf "$home"' EXIT
$NOS build -t web ./examples/httpserver || exit 1
port=18480
# logms FILE MSG: the time of the first monitor.log line with MSG, in ms.
logms() {
	t=$(grep -m1 "msg=\"$2" "$1" | sed 's/^time=\([^ ]*\) .*/\1/')
	[ -n "$t" ] && echo $(($(date -d "$t" +%s%N) / 1000000))
}
once() { # once FLAGS: prints total, to-monitor, to-VM, to-answer (ms)
	t0=$(ms)
	id=$($NOS run -d $1 --accel tcg -m "${MEM}M" -p 127.0.0.1:$port:8080 web) || exit 1
	await $port 2000 || { echo "no answer"; exit 1; }
	t3=$(ms)
	dir=$($NOS inspect -f '{{.Dir}}' "$id")
	t1=$(logms "$dir/monitor.log" "monitor started")
	t2=$(logms "$dir/monitor.log" "VM started")
	echo "$((t3 - t0)) $((t1 - t0)) $((t2 - t1)) $((t3 - t2))"
	# The first --snapshot run saves; wait for it before removing.
	if [ "$1" = --snapshot ]; then
		n=0
		while [ -z "$(ls "$home"/cache/snapshots/*.state 2>/dev/null)" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
	fi
	$NOS rm -f "$id" >/dev/null
}
echo "== the first --snapshot run (boots cold, saves)"
once --snapshot >/dev/null
cat "$home"/cache/snapshots/*.json
cold="" warm=""
r=1
while [ $r -le "$ROUNDS" ]; do
	c=$(once "") w=$(once --snapshot)
	echo "round $r: cold $c | warm $w   (total, nos run→monitor, →VM started, →first answer; ms)"
	cold="$cold ${c%% *}" warm="$warm ${w%% *}"
	r=$((r + 1))
done
mc=$(echo "$cold" | median) mw=$(echo "$warm" | median)
echo "median run → first answer: cold $mc ms, warm $mw ms, warm/cold $(echo "scale=3; $mw / $mc" | bc)"
