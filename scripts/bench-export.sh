#!/bin/sh
# Export benchmarks (issue 13), for the example HTTP app on nos's kernel
# with the cloud feature:
#   - each disk format's file size and allocated size, and export time;
#   - QEMU start to first HTTP response: q35 + Debian's OVMF from the raw
#     disk (UEFI, systemd's stub, virtio-blk, DHCP) vs nos run (microvm,
#     direct boot of the vmlinux) of the same image and of the image on
#     the default blk,net kernel, interleaved in one run;
#   - the cloud kernel's size beside the microvm kernels;
#   - the minimum memory that serves on q35 + OVMF (3 of 3 boots).
# Prints one line per measurement; the medians go to BENCHMARKS.md.
#   NOS=bin/nos RUNS=5 scripts/bench-export.sh
# Needs the blk,cloud,net and blk,net kernels (make test-deps), ovmf,
# systemd-boot-efi, qemu-utils, curl. All figures are TCG.
set -eu
NOS=${NOS:-bin/nos}
RUNS=${RUNS:-5}
EXPORTS=${EXPORTS:-3}
ACCEL=${ACCEL:-tcg}
work=$(mktemp -d /var/tmp/nos-bench-export.XXXXXX)
trap 'pkill -f "$work/" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export NOS_HOME=$work/home
mkdir -p "$NOS_HOME/cache"
real=${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built
ln -s "$real" "$NOS_HOME/cache/kernels-built"
$NOS build -t web --features blk,cloud,net --port 8080 ./examples/httpserver >/dev/null
$NOS build -t webmicro --features blk,net --port 8080 ./examples/httpserver >/dev/null

for k in $(ls "$real"); do
	[ -f "$real/$k/kernel.json" ] || continue
	feats=$(tr -d '\n ' <"$real/$k/kernel.json" | sed -n 's/.*"features":\[\([^]]*\)\].*/\1/p' | tr -d '"')
	echo "kernel ${feats:-none} bzImage $(stat -c %s "$real/$k/bzImage") bytes"
done

# PARTS chooses what to measure: sizes (and export times), boot, memory.
PARTS=${PARTS:-sizes boot memory}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# Sizes and export times. The boot and memory parts need the raw disk.
for fmt in raw qcow2 vmdk vhd gce aws; do
	i=1
	while [ $i -le "$EXPORTS" ]; do
		rm -f "$work/web.$fmt"
		t0=$(date +%s.%N)
		$NOS export web --format "$fmt" -o "$work/web.$fmt" >/dev/null 2>&1
		t1=$(date +%s.%N)
		echo "export $fmt run $i $(echo "$t1 - $t0" | bc) s"
		i=$((i + 1))
	done
	has sizes || break
	echo "size $fmt file $(stat -c %s "$work/web.$fmt") bytes, allocated $(($(stat -c %b "$work/web.$fmt") * 512)) bytes"
done

# First HTTP response, from the moment QEMU (or nos run) starts.
port=18181
waithttp() {
	while ! curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
}
ovmf() { # $1 memory MiB; the raw disk, snapshot (never written)
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
	qemu-system-x86_64 -machine q35 -accel "$ACCEL" -cpu max -m "$1" -smp 1 -nodefaults -nographic -no-reboot \
		-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,unit=1,file="$work/vars.fd" \
		-serial file:"$work/console.log" \
		-drive if=none,id=d0,snapshot=on,format=raw,file="$work/web.raw" -device virtio-blk-pci,drive=d0 \
		-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080 -device virtio-net-pci,netdev=n0 \
		</dev/null >/dev/null 2>&1 &
	echo $!
}
r=1
has boot || r=$((RUNS + 1))
while [ $r -le "$RUNS" ]; do
	t0=$(date +%s.%N)
	pid=$(ovmf 256)
	waithttp
	t1=$(date +%s.%N)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	echo "boot run $r q35-ovmf $(echo "$t1 - $t0" | bc) s"
	for img in web webmicro; do
		t0=$(date +%s.%N)
		id=$($NOS run -d --accel "$ACCEL" -m 256 -p 127.0.0.1:$port:8080 $img)
		waithttp
		t1=$(date +%s.%N)
		$NOS rm -f "$id" >/dev/null
		echo "boot run $r microvm-$img $(echo "$t1 - $t0" | bc) s"
	done
	r=$((r + 1))
done

# Minimum memory on q35 + OVMF: the smallest size (in 8 MiB steps) at
# which 3 boots of 3 serve within 90 s.
serves() { # $1 MiB
	n=1
	while [ $n -le 3 ]; do
		pid=$(ovmf "$1")
		ok=0
		end=$(($(date +%s) + 90))
		while [ "$(date +%s)" -lt $end ]; do
			if curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/"; then ok=1; break; fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
		[ $ok = 1 ] || return 1
		n=$((n + 1))
	done
}
lo=16 hi=256
has memory || hi=$lo
while [ $((hi - lo)) -gt 8 ]; do
	mid=$(((lo + hi) / 2 / 8 * 8))
	if serves $mid; then hi=$mid; else lo=$mid; fi
	echo "memory probe $mid MiB: $( [ $hi = $mid ] && echo serves || echo fails)"
done
has memory && echo "memory q35-ovmf minimum $hi MiB"
