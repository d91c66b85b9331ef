#!/bin/sh
# What signature verification adds to nos run (issue 12), no VM involved:
# `nos verify --key` of a signed image (read the key and the local
# signatures, one ECDSA verification) vs `nos inspect` of the same image
# (a process that resolves it and reads its config), interleaved.
#   NOS=bin/nos RUNS=21 scripts/bench-verify.sh
set -eu
NOS=$(readlink -f "${NOS:-bin/nos}")
RUNS=${RUNS:-21}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NOS_HOME=$work/home COSIGN_PASSWORD=bench
mkdir -p "$NOS_HOME/cache"
ln -s "${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built" "$NOS_HOME/cache/kernels-built"
"$NOS" build -t hello ./examples/hello >/dev/null 2>&1
"$NOS" sign --generate-key --key "$work/k.key" >/dev/null
"$NOS" sign --key "$work/k.key" hello >/dev/null
now() { date +%s.%N; }
i=0
while [ $i -lt "$RUNS" ]; do
	t0=$(now); "$NOS" verify --key "$work/k.pub" hello >/dev/null; t1=$(now)
	"$NOS" inspect hello >/dev/null; t2=$(now)
	echo "$t0 $t1 $t2"
	i=$((i + 1))
done | awk '{ v[NR] = $2 - $1; n[NR] = $3 - $2 }
function median(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((k + 1) / 2)] }
END { mv = median(v, NR); mi = median(n, NR)
	printf "median nos verify %.1f ms, nos inspect %.1f ms, difference %.1f ms (%d runs)\n", mv * 1000, mi * 1000, (mv - mi) * 1000, NR }'
