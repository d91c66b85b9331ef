#!/bin/sh
# Load (issue 16, item 5), in a nos home of its own, on this machine's
# default kernel, under TCG:
#  1. PARALLEL detached instances of the example HTTP app at -m MEM,
#     started by concurrent `nos run -d` with an HTTP health check: how many
#     reach healthy, how many fail, how long it took, host memory before
#     and while they run;
#  2. SEQUENTIAL `nos run --rm` of examples/hello, one after the other:
#     processes, sockets, temporary directories, open files and store size
#     before and after (what a run leaves behind);
#  3. RACES mixed commands (run, stop, rm, ps, logs, rmi, prune) from 8
#     workers on 4 shared names, then `nos system check`.
#   make stress-load   (PARALLEL=50 MEM=64 SEQUENTIAL=500 RACES=100)
set -u
cd "$(dirname "$0")/.."
NOS=${NOS:-$(pwd)/bin/nos}
PARALLEL=${PARALLEL:-50}
MEM=${MEM:-64}
SEQUENTIAL=${SEQUENTIAL:-500}
RACES=${RACES:-100}
built=${NOS_BUILT_KERNELS:-$HOME/.local/share/nos/cache/kernels-built}
home=$(mktemp -d /tmp/nos-stress-load.XXXXXX)
mkdir -p "$home/cache"
ln -s "$built" "$home/cache/kernels-built"
export NOS_HOME="$home"
trap 'for i in $($NOS ps -aq 2>/dev/null); do $NOS rm -f "$i" >/dev/null 2>&1; done; rm -rf "$home"' EXIT
$NOS build -t web ./examples/httpserver >/dev/null || exit 1
$NOS build -t hello ./examples/hello >/dev/null || exit 1
avail() { awk '/^MemAvailable:/{print int($2/1024)}' /proc/meminfo; }

echo "== 1. $PARALLEL detached instances at -m ${MEM}M, started at once"
before=$(avail)
t0=$(date +%s)
i=0
while [ $i -lt "$PARALLEL" ]; do
	$NOS run -d --accel tcg -m "${MEM}M" --name "w$i" --health-http / --health-port 8080 --health-interval 2s web >/dev/null 2>"$home/run-$i.err" &
	i=$((i + 1))
done
wait
started=$($NOS ps -q | wc -l)
failed_run=$(cat "$home"/run-*.err | grep -c '^nos:')
deadline=$(($(date +%s) + 600)) # hung boots end after 5 min (a boot-timeout crash)
while :; do
	healthy=$($NOS ps --format '{{.Status}}' | grep -c '(healthy)')
	[ "$healthy" -ge "$started" ] && break
	[ "$(date +%s)" -gt $deadline ] && break
	sleep 5
done
t1=$(date +%s)
notok=$($NOS ps -a --format '{{.Names}} {{.Status}}' | grep -v '(healthy)' || true)
during=$(avail)
pss=0
for id in $($NOS ps -q); do
	for p in $($NOS inspect -f '{{.State.VMPID}} {{.State.MonitorPID}}' "$id"); do
		k=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
		pss=$((pss + ${k:-0}))
	done
done
echo "started $started of $PARALLEL (nos run failed: $failed_run), healthy $healthy after $((t1 - t0)) s"
echo "QEMU + monitor PSS: $((pss / 1024)) MiB in all, $((pss / 1024 / (started > 0 ? started : 1))) MiB per instance; MemAvailable $before MiB before, $during MiB while they run"
[ -n "$notok" ] && echo "not healthy:" && echo "$notok"
for i in $($NOS ps -aq); do $NOS rm -f "$i" >/dev/null; done

echo "== 2. $SEQUENTIAL sequential nos run --rm hello"
snapshot() {
	echo "processes(qemu,nos) $(pgrep -c -f 'qemu-system-x86_64|__monitor' || true)"
	echo "unix-sockets $(wc -l < /proc/net/unix)"
	echo "tmp-nos-dirs $(ls -d /tmp/nos-* 2>/dev/null | wc -l) home-tmp-files $(find "$home/images/tmp" "$home/volumes" -mindepth 1 2>/dev/null | wc -l)"
	echo "open-files $(awk '{print $1}' /proc/sys/fs/file-nr)"
	echo "store-bytes $(du -sb "$home/images" | cut -f1) instances $(ls "$home/instances" 2>/dev/null | wc -l)"
}
snapshot > "$home/before"
t0=$(date +%s)
fails=0
n=0
while [ $n -lt "$SEQUENTIAL" ]; do
	out=$($NOS run --rm --accel tcg hello 2>&1) || fails=$((fails + 1))
	n=$((n + 1))
done
t1=$(date +%s)
sleep 2
snapshot > "$home/after"
echo "$SEQUENTIAL runs in $((t1 - t0)) s, $fails failed; before -> after:"
diff "$home/before" "$home/after" >/dev/null && echo "  identical" || { echo "  before:"; sed 's/^/    /' "$home/before"; echo "  after:"; sed 's/^/    /' "$home/after"; }

echo "== 3. $RACES racing commands on 4 names"
race() {
	w=$1
	k=0
	while [ $k -lt $((RACES / 8)) ]; do
		name=r$(((w + k) % 4))
		case $(((w * 7 + k * 3) % 7)) in
		0 | 1) $NOS run -d --accel tcg -m 64M --name "$name" web ;;
		2) $NOS stop -t 2 "$name" ;;
		3) $NOS rm -f "$name" ;;
		4) $NOS ps -a ;;
		5) $NOS logs "$name" ;;
		6) $NOS system prune ;;
		esac >/dev/null 2>&1
		k=$((k + 1))
	done
}
w=0
while [ $w -lt 8 ]; do race $w & w=$((w + 1)); done
wait
$NOS rmi hello >/dev/null 2>&1
check=$($NOS system check 2>&1)
echo "nos system check: exit $?: $check"
echo "instances left: $($NOS ps -a --format '{{.Names}} {{.Status}}' | tr '\n' ';')"
