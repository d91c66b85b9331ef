#!/bin/sh
# Capacity (issue 15, item 4): how many idle instances of the example
# HTTP app this host holds. Starts them BATCH at a time (concurrent
# `nos run -d` at -m MEM with an HTTP health check), waits for the batch
# to be healthy, and stops when the host's MemAvailable falls below
# MARGIN MiB, when a batch does not get healthy within BATCH_WAIT
# seconds (what then limits is the CPU: under TCG every idle guest's
# timer ticks are emulated), or after MAX instances or LIMIT seconds.
# Prints per batch: instances, MemAvailable, QEMU + monitor PSS per
# instance, load average, how long the batch took to be healthy, and how
# busy the host's CPUs were in the 5 s after (the fleet, and what is
# left of the batch's boots).
#   make bench-capacity   (MEM=48 BATCH=10 MARGIN=2048 MAX=400 LIMIT=1500)
# KSM=1 runs the host's kernel samepage merging for the run (QEMU marks
# guest memory mergeable by default; identical pages of the guests, their
# kernel, nos-init and the app, are then kept once) and puts the host's
# setting back afterwards; KSM_PAGES is ksmd's pages per 20 ms wake-up.
# NOS_TCG_BUFFER_MIB=16 gives every QEMU a 16 MiB translation buffer
# instead of 32 (see "TCG's translation buffer" in BENCHMARKS.md).
# HEALTH_INTERVAL is the instances' --health-interval (5s; docker's
# default is 30s): under TCG every probe is emulated work.
set -u
cd "$(dirname "$0")/.."
NOS=${NOS:-$(pwd)/bin/nos}
MEM=${MEM:-48}
BATCH=${BATCH:-10}
MARGIN=${MARGIN:-2048}
MAX=${MAX:-400}
LIMIT=${LIMIT:-1500}
KSM=${KSM:-0}
KSM_PAGES=${KSM_PAGES:-1000}
ksm=/sys/kernel/mm/ksm
BATCH_WAIT=${BATCH_WAIT:-300}
HEALTH_INTERVAL=${HEALTH_INTERVAL:-5s}
built=${NOS_BUILT_KERNELS:-$HOME/.local/share/nos/cache/kernels-built}
home=$(mktemp -d /tmp/nos-capacity.XXXXXX)
mkdir -p "$home/cache"
[ -d "$built" ] && ln -s "$built" "$home/cache/kernels-built"
export NOS_HOME="$home"
cleanup() {
	echo "removing the instances"
	$NOS ps -aq | xargs -r -n 20 -P 2 $NOS rm -f >/dev/null 2>&1
	rm -rf "$home"
	if [ -n "${ksm_was:-}" ]; then
		echo "$ksm_was" >$ksm/run
		echo "$ksm_pages_was" >$ksm/pages_to_scan
	fi
}
trap cleanup EXIT
$NOS build -t web ./examples/httpserver >/dev/null || exit 1
if [ "$KSM" = 1 ]; then
	[ -w $ksm/run ] || { echo "bench-capacity: KSM=1 needs root and a kernel with $ksm"; exit 1; }
	ksm_was=$(cat $ksm/run) ksm_pages_was=$(cat $ksm/pages_to_scan)
	echo "$KSM_PAGES" >$ksm/pages_to_scan
	echo 1 >$ksm/run
fi
avail() { awk '/^MemAvailable:/{print int($2/1024)}' /proc/meminfo; }
# busy: the host's CPU use over 5 s, in percent of all cores (/proc/stat:
# user, nice, system, irq, softirq, steal against those plus idle, iowait).
busy() {
	a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 5
	b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	echo "$a $b" | awk '{d=($3-$1)+($4-$2); printf "%d", (d > 0 ? 100*($3-$1)/d : 0)}'
}
pss_per() {
	total=0 n=0
	for id in $($NOS ps -q); do
		for p in $($NOS inspect -f '{{.State.VMPID}} {{.State.MonitorPID}}' "$id"); do
			k=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
			total=$((total + ${k:-0}))
		done
		n=$((n + 1))
	done
	echo $((total / 1024 / (n > 0 ? n : 1)))
}
t0=$(date +%s)
n=0
why="MAX=$MAX reached"
echo "MemAvailable $(avail) MiB before; -m ${MEM}M, batches of $BATCH, margin $MARGIN MiB, health checks every $HEALTH_INTERVAL, KSM=$KSM, NOS_TCG_BUFFER_MIB=${NOS_TCG_BUFFER_MIB:-default}"
while [ $n -lt "$MAX" ]; do
	if [ "$(avail)" -lt "$MARGIN" ]; then why="MemAvailable below $MARGIN MiB"; break; fi
	if [ $(($(date +%s) - t0)) -gt "$LIMIT" ]; then why="time limit ${LIMIT}s"; break; fi
	b0=$(date +%s)
	i=0
	while [ $i -lt "$BATCH" ]; do
		$NOS run -d --accel tcg -m "${MEM}M" --health-http / --health-port 8080 --health-interval "$HEALTH_INTERVAL" web >/dev/null 2>>"$home/run.err" &
		i=$((i + 1))
	done
	wait
	n=$((n + BATCH))
	while :; do
		healthy=$($NOS ps --format '{{.Status}}' | grep -c '(healthy)')
		[ "$healthy" -ge "$n" ] && break
		[ $(($(date +%s) - b0)) -gt "$BATCH_WAIT" ] && break
		sleep 3
	done
	took=$(($(date +%s) - b0))
	echo "instances $n, healthy $healthy, MemAvailable $(avail) MiB, PSS/instance $(pss_per) MiB, load $(cut -d' ' -f1-3 /proc/loadavg), batch healthy in ${took}s, CPU busy $(busy)% (5 s after)$([ "$KSM" = 1 ] && echo ", KSM merged $(($(cat $ksm/pages_sharing) * 4 / 1024)) MiB")"
	if [ "$healthy" -lt "$n" ]; then why="a batch not healthy within ${BATCH_WAIT}s ($healthy of $n healthy)"; break; fi
done
failed=$(grep -c '^nos:' "$home/run.err" 2>/dev/null || true)
echo "stopped: $why; $healthy healthy instances of $n started (nos run failures: $failed) after $(($(date +%s) - t0)) s"
