#!/bin/sh
# Data benchmarks (issue 10): a volume and a shared host directory, each
# measured from inside the guest and natively on the host in one run,
# interleaved; and boot with one volume and one share attached vs none.
# Prints one line per measurement; BENCHMARKS.md has the medians.
#   NOS=bin/nos RUNS=3 BOOTS=5 scripts/bench-data.sh
# Needs root (host directories), the blk,net kernel (make test-deps) and Go.
set -eu
NOS=${NOS:-bin/nos}
RUNS=${RUNS:-3}
BOOTS=${BOOTS:-5}
ACCEL=${ACCEL:-tcg}
work=$(mktemp -d /var/tmp/nos-bench-data.XXXXXX)
trap '$NOS --home "$work/home" rm -f $($NOS --home "$work/home" ps -aq) >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export NOS_HOME=$work/home
mkdir -p "$NOS_HOME/cache"
# The blk,net kernel nos would pick, without copying the whole cache.
real=${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built
ln -s "$real" "$NOS_HOME/cache/kernels-built"
$NOS build -t dbench --features net,blk ./e2e/testdata/probe >/dev/null
go build -o "$work/probe" ./e2e/testdata/probe
$NOS volume create --size 1g benchvol >/dev/null

# The shared tree: a 64 MiB file and 2000 small files in 20 directories,
# on the same disk as the volume.
share=$work/share
mkdir -p "$share/tree"
head -c $((64 << 20)) /dev/urandom >"$share/big.dat"
i=0
while [ $i -lt 20 ]; do
	mkdir "$share/tree/d$i"
	j=0
	while [ $j -lt 100 ]; do echo "$i $j" >"$share/tree/d$i/f$j"; j=$((j + 1)); done
	i=$((i + 1))
done
mkdir -p "$work/hostdisk"

run=1
while [ $run -le "$RUNS" ]; do
	echo "run $run volume-guest $($NOS run --rm --accel "$ACCEL" -v benchvol:/b dbench diskbench /b | grep diskbench)"
	echo "run $run volume-host  $("$work/probe" diskbench "$work/hostdisk")"
	echo "run $run share-guest  $($NOS run --rm --accel "$ACCEL" -v "$share:/s:ro" dbench fsbench /s | grep fsbench)"
	echo "run $run share-host   $("$work/probe" fsbench "$share")"
	run=$((run + 1))
done

# Boot: from nos run to the app's exit, with nothing attached vs a
# volume and a share.
b=1
while [ $b -le "$BOOTS" ]; do
	for kind in none data; do
		extra=""
		[ $kind = data ] && extra="-v benchvol:/b -v $share:/s:ro"
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		$NOS run --rm --accel "$ACCEL" $extra dbench exit 0
		t1=$(date +%s.%N)
		echo "boot $b $kind $(echo "$t1 - $t0" | bc) s"
	done
	b=$((b + 1))
done
