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
