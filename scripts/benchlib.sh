# Shared by the boot-timing scripts (sourced, not run).

# ms: the time now in milliseconds.
ms() { echo $(($(date +%s%N) / 1000000)); }

# await PORT TRIES: poll 127.0.0.1:PORT every 10 ms (each try at most
# 250 ms) until it answers HTTP; fails after TRIES tries.
await() {
	n=0
	until curl -s -m 0.25 -o /dev/null "127.0.0.1:$1/"; do
		n=$((n + 1))
		[ $n -gt "$2" ] && return 1
		sleep 0.01
	done
}

# median: the median of the numbers on standard input, blank-separated.
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# privhome NAME: makes a NOS_HOME of its own for the script NAME, sharing
# this machine's built kernels ($NOS_BUILT_KERNELS to pin others), exports
# it and removes it, with its instances, when the script exits.
privhome() {
	built=${NOS_BUILT_KERNELS:-$HOME/.local/share/nos/cache/kernels-built}
	home=$(mktemp -d "/tmp/nos-$1.XXXXXX")
	mkdir -p "$home/cache"
	[ -d "$built" ] && ln -s "$built" "$home/cache/kernels-built"
	export NOS_HOME="$home"
	trap 'for i in $($NOS ps -aq 2>/dev/null); do $NOS rm -f "$i" >/dev/null 2>&1; done; rm -rf "$home"' EXIT
}

# firstanswer IMAGE PORT MEM: prints the ms from `nos run -d` of IMAGE at
# -m MEM, published on PORT, to its first HTTP answer; removes it then.
firstanswer() {
	t0=$(ms)
	id=$($NOS run -d --accel tcg -m "$3M" -p "127.0.0.1:$2:8080" "$1") || exit 1
	await "$2" 3000 || { echo "no answer"; exit 1; }
	echo $(($(ms) - t0))
	$NOS rm -f "$id" >/dev/null
}
