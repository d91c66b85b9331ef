#!/bin/sh
# nos-runtime under podman (issue 14): host memory (RSS and PSS of conmon
# and every process below it) of one idle container, and the idle CPU of
# its QEMU over 20 s; then the same for runc and crun when they can run
# here. Prints one line per process and a total per runtime.
#   make bench-runtime      (root; podman, the blk,net kernel)
set -u
cd "$(dirname "$0")/.."
W=$(mktemp -d /var/tmp/nos-bench-runtime.XXXXXX)
P="podman --root $W/storage --runroot $W/run"
trap '$P rm -af >/dev/null 2>&1; rm -rf "$W"' EXIT
mkdir -p "$W/rootfs/bin"
CGO_ENABLED=0 go build -o "$W/rootfs/bin/ocihello" ./e2e/testdata/ocihello || exit 1
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
$P import --change 'ENTRYPOINT ["/bin/ocihello"]' "$W/rootfs.tar" localhost/nos-bench:1 >/dev/null 2>&1 || exit 1

# tree PID: PID and all its descendants.
tree() {
	echo "$1"
	for c in $(pgrep -P "$1"); do tree "$c"; done
}
for rt in "$PWD/bin/nos-runtime" /usr/sbin/runc /usr/bin/crun; do
	name=$(basename "$rt")
	if ! id=$($P --runtime "$rt" run -d --network none localhost/nos-bench:1 wait 2>"$W/err"); then
		echo "$name: cannot run here: $(tail -1 "$W/err")"
		continue
	fi
	i=0
	while ! $P logs "$id" 2>/dev/null | grep -q waiting && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
	sleep 2
	conmon=$(pgrep -f "conmon.*$id" | head -1)
	rss=0 pss=0
	for p in $(tree "$conmon"); do
		r=$(awk '/^Rss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
		s=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
		rss=$((rss + ${r:-0})) pss=$((pss + ${s:-0}))
		echo "  $name pid $p $(tr '\0' ' ' </proc/"$p"/cmdline | cut -c1-50) rss ${r:-0} KiB"
	done
	echo "$name: RSS $rss KiB, PSS $pss KiB (conmon and everything below it)"
	q=$(for p in $(tree "$conmon"); do tr '\0' ' ' </proc/"$p"/cmdline | grep -q '^/usr/bin/qemu-system' && echo "$p"; done | head -1)
	if [ -n "$q" ]; then
		t0=$(awk '{print $14+$15}' /proc/"$q"/stat)
		sleep 20
		t1=$(awk '{print $14+$15}' /proc/"$q"/stat)
		echo "$name: idle QEMU $((t1 - t0)) ticks in 20 s ($(getconf CLK_TCK) per second)"
	fi
	$P stop -t 30 "$id" >/dev/null
	$P rm "$id" >/dev/null
done
