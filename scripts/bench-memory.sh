#!/bin/sh
# Minimum guest memory of the example HTTP app (issue 15): for each nos
# binary given (NOSES="old/nos bin/nos"; default bin/nos), the example
# built by that nos on its default kernel, and the least -m at which
# BOOTS boots out of BOOTS answer HTTP through a published port within
# 60 s, by bisection between LO (assumed too little) and HI (must work).
# Then, at -m 256, the host's memory for one idle instance: QEMU's RSS and
# PSS 10 s after the first answer (the guest pages QEMU holds are what
# the guest touched). Each binary gets a home of its own that shares this
# machine's built kernels, so an older nos finds the kernels its own
# configuration makes. LAYOUTS="initramfs root-disk" measures the example
# both ways with each nos, side by side: in the initramfs (the default)
# and on a root disk (nos build --root-disk). BUILD_FLAGS are given to
# every nos build (e.g. "--kernel-arg rootfstype=ramfs" to try one).
#   make bench-memory   (NOSES=... LO=16 HI=128 BOOTS=3 LAYOUTS=initramfs)
set -u
cd "$(dirname "$0")/.."
NOSES=${NOSES:-bin/nos}
LO=${LO:-16}
HI=${HI:-128}
BOOTS=${BOOTS:-3}
LAYOUTS=${LAYOUTS:-initramfs}
BUILD_FLAGS=${BUILD_FLAGS:-}
built=${NOS_BUILT_KERNELS:-$HOME/.local/share/nos/cache/kernels-built}
port=18290
serves() { # NOS MIB: one boot answers
	port=$((port + 1))
	id=$($1 run -d --accel tcg -m "$2"M -p 127.0.0.1:$port:8080 memapp 2>/dev/null) || return 1
	ok=1
	i=0
	until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
		i=$((i + 1))
		[ $i -gt 120 ] && { ok=0; break; }
		[ "$($1 inspect -f '{{.State.Status}}' "$id" 2>/dev/null)" = running ] || { ok=0; break; }
		sleep 0.5
	done
	$1 rm -f "$id" >/dev/null 2>&1
	[ $ok = 1 ]
}
works() { # NOS MIB: every one of BOOTS boots answers
	for b in $(seq "$BOOTS"); do
		serves "$1" "$2" || { echo "  $2 MiB: boot $b of $BOOTS did not answer"; return 1; }
	done
	echo "  $2 MiB: $BOOTS of $BOOTS answered"
}
for nos in $NOSES; do
for layout in $LAYOUTS; do
	home=$(mktemp -d /tmp/nos-bench-memory.XXXXXX)
	mkdir -p "$home/cache"
	ln -s "$built" "$home/cache/kernels-built"
	export NOS_HOME="$home"
	flags=$BUILD_FLAGS
	[ "$layout" = root-disk ] && flags="$flags --root-disk"
	$nos build $flags -t memapp ./examples/httpserver >/dev/null || exit 1
	echo "$nos ($layout): the example, $($nos images --format '{{.Size}}' 2>/dev/null) image, on kernel $($nos inspect memapp | grep -m1 '"version"' | tr -d ' ,"' | cut -d: -f2), init API $($nos inspect memapp | grep -m1 '"initApi"' | tr -dc 0-9):"
	lo=$LO hi=$HI
	works "$nos" "$hi" || { echo "$nos: $hi MiB does not work"; exit 1; }
	while [ $((hi - lo)) -gt 1 ]; do
		mid=$(((lo + hi) / 2))
		if works "$nos" "$mid"; then hi=$mid; else lo=$mid; fi
	done
	echo "$nos: minimum memory $hi MiB ($BOOTS of $BOOTS boots answer; $lo MiB does not)"
	port=$((port + 1))
	id=$($nos run -d --accel tcg -m 256M -p 127.0.0.1:$port:8080 memapp 2>/dev/null)
	i=0
	until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
		i=$((i + 1)); [ $i -gt 240 ] && break; sleep 0.5
	done
	sleep 10
	q=$($nos inspect -f '{{.State.VMPID}}' "$id")
	echo "$nos: one idle instance at -m 256: QEMU RSS $(awk '/^Rss:/{print $2}' /proc/"$q"/smaps_rollup) KiB, PSS $(awk '/^Pss:/{print $2}' /proc/"$q"/smaps_rollup) KiB"
	$nos rm -f "$id" >/dev/null
	rm -rf "$home"
done
done
