#!/bin/sh
# Network benchmarks (issue 11), inside a network namespace this script
# makes (nothing leaves it): instance-to-instance throughput and 64-byte
# round trips on a private network, the same through user-mode networking
# and published ports (client guest -> 10.0.2.2 -> host port -> server
# guest), and natively on the namespace's loopback; boot with a tap NIC
# vs user-mode. Prints one line per measurement; BENCHMARKS.md has the
# medians.   NOS=bin/nos RUNS=3 BOOTS=5 scripts/bench-net.sh   (root)
set -eu
NOS=$(readlink -f "${NOS:-bin/nos}")
RUNS=${RUNS:-3}
BOOTS=${BOOTS:-5}
ACCEL=${ACCEL:-tcg}
ns=nos-bench-$$
work=$(mktemp -d /var/tmp/nos-bench-net.XXXXXX)
export NOS_HOME=$work/home
N() { ip netns exec "$ns" "$NOS" "$@"; }
cleanup() {
	for id in $(N ps -aq 2>/dev/null); do N rm -f "$id" >/dev/null 2>&1 || true; done
	N network rm bench >/dev/null 2>&1 || true
	[ -n "${hostsrv:-}" ] && kill "$hostsrv" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	ip netns del "$ns-h" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "$NOS_HOME/cache"
ln -s "${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built" "$NOS_HOME/cache/kernels-built"
$NOS build -t nb ./e2e/testdata/probe >/dev/null
go build -o "$work/probe" ./e2e/testdata/probe
N network create bench >/dev/null
N run -d --accel "$ACCEL" --network bench --name srv nb netbench-server >/dev/null
N run -d --accel "$ACCEL" --name usrv -p 127.0.0.1:5001:5001 -p 127.0.0.1:5002:5002 nb netbench-server >/dev/null
# The native pair, in a namespace of its own (usrv's published ports
# hold 5001 and 5002 on the first one's loopback).
ip netns add "$ns-h"
ip netns exec "$ns-h" ip link set lo up
ip netns exec "$ns-h" "$work/probe" netbench-server >/dev/null &
hostsrv=$!
sleep 20
run=1
while [ $run -le "$RUNS" ]; do
	echo "run $run private   $(N run --rm --accel "$ACCEL" --network bench nb netbench srv | grep netbench)"
	echo "run $run usermode  $(N run --rm --accel "$ACCEL" nb netbench 10.0.2.2 | grep netbench)"
	echo "run $run native    $(ip netns exec "$ns-h" "$work/probe" netbench 127.0.0.1)"
	run=$((run + 1))
done
b=1
while [ $b -le "$BOOTS" ]; do
	for kind in usermode tap; do
		extra=""
		[ $kind = tap ] && extra="--network bench"
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		N run --rm --accel "$ACCEL" $extra nb exit 0
		t1=$(date +%s.%N)
		echo "boot $b $kind $(echo "$t1 - $t0" | bc) s"
	done
	b=$((b + 1))
done
