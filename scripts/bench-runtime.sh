#!/bin/sh
# nos-runtime against runc and crun under podman (issue 14), in one run:
#   1. `podman run --rm` of a static hello program: wall time, median of
#      RUNS (after one warm-up run per runtime);
#   2. host memory of one idle container: RSS and PSS of conmon and every
#      process below it, and the idle CPU of nos's QEMU over 20 s;
#   3. Debian's nginx in a container, its port published on loopback
#      (netavark's bridge network): wrk's request rate and latency.
# Prints one line per figure.
#   make bench-runtime      (root; podman, wrk, the blk,net kernel)
#
# This host's root lacks CAP_SYS_RESOURCE, so podman's default rlimits
# (which raise RLIMIT_NOFILE and RLIMIT_NPROC) fail under runc and crun:
# every container here gets --ulimit nofile=1024:1024 --ulimit
# nproc=4096:4096. crun refuses this host's hybrid cgroup layout (a
# cgroup2 mount with controllers at /sys/fs/cgroup/unified): the script
# re-runs itself in a private mount namespace without that mount, which
# leaves the v1 hierarchies every runtime uses here.
set -u
cd "$(dirname "$0")/.."
if [ -z "${NOS_BENCH_NS:-}" ]; then
	export NOS_BENCH_NS=1
	exec unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0"' "$0"
fi
RUNS=${RUNS:-5}
W=$(mktemp -d /var/tmp/nos-bench-runtime.XXXXXX)
P="podman --root $W/storage --runroot $W/run"
LIM="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
trap '$P rm -af >/dev/null 2>&1; rm -rf "$W"' EXIT
command -v wrk >/dev/null || { echo "bench-runtime needs wrk (apt-get install wrk)"; exit 1; }
NOS_RT="$PWD/bin/nos-runtime"
RUNTIMES="$NOS_RT /usr/sbin/runc /usr/bin/crun"

# The hello image: ocihello, static.
mkdir -p "$W/hello/bin"
CGO_ENABLED=0 go build -o "$W/hello/bin/ocihello" ./e2e/testdata/ocihello || exit 1
tar -C "$W/hello" -cf "$W/hello.tar" .
$P import --change 'ENTRYPOINT ["/bin/ocihello"]' "$W/hello.tar" localhost/nos-bench:1 >/dev/null 2>&1 || exit 1

# The nginx image: Debian's nginx and the libraries ldd names, listening
# on 80, workers as nobody, logs on stderr.
N="$W/nginx"
mkdir -p "$N/etc/nginx" "$N/srv/www" "$N/tmp" "$N/var/log/nginx" "$N/var/lib/nginx"
for f in /usr/sbin/nginx $(ldd /usr/sbin/nginx | grep -o '/[^ ]*'); do cp --parents -L "$f" "$N"; done
printf 'root:x:0:0::/root:/usr/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n' >"$N/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$N/etc/group"
head -c 4096 /dev/zero | tr '\0' 'x' >"$N/srv/www/index.html"
cat >"$N/etc/nginx/nginx.conf" <<'EOF'
daemon off;
worker_processes 1;
error_log stderr;
pid /tmp/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path /tmp/body;
	proxy_temp_path /tmp/proxy;
	fastcgi_temp_path /tmp/fastcgi;
	uwsgi_temp_path /tmp/uwsgi;
	scgi_temp_path /tmp/scgi;
	default_type text/html;
	server { listen 80; root /srv/www; }
}
EOF
tar -C "$N" -cf "$W/nginx.tar" .
$P import --change 'ENTRYPOINT ["/usr/sbin/nginx","-e","stderr"]' "$W/nginx.tar" localhost/nos-bench-nginx:1 >/dev/null 2>&1 || exit 1

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
tree() {
	echo "$1"
	for c in $(pgrep -P "$1"); do tree "$c"; done
}

echo "== 1. podman run --rm hello (wall seconds, median of $RUNS after a warm-up)"
for rt in $RUNTIMES; do
	name=$(basename "$rt")
	if ! $P --runtime "$rt" run --rm $LIM --network none localhost/nos-bench:1 exit 0 >/dev/null 2>"$W/err"; then
		echo "$name: cannot run here: $(tail -1 "$W/err")"
		continue
	fi
	for i in $(seq "$RUNS"); do
		t0=$(now)
		$P --runtime "$rt" run --rm $LIM --network none localhost/nos-bench:1 exit 0 >/dev/null 2>&1
		t1=$(now)
		echo "$t1 - $t0" | bc
	done >"$W/times"
	echo "$name: run --rm median $(median <"$W/times") s (runs: $(tr '\n' ' ' <"$W/times"))"
done

echo "== 2. one idle container: host memory of conmon and everything below it"
for rt in $RUNTIMES; do
	name=$(basename "$rt")
	if ! id=$($P --runtime "$rt" run -d $LIM --network none localhost/nos-bench:1 wait 2>"$W/err"); then
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
		echo "  $name pid $p $(tr '\0' ' ' </proc/"$p"/cmdline | cut -c1-50) rss ${r:-0} KiB pss ${s:-0} KiB"
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

echo "== 3. nginx through the published port: wrk -t2 -c16 -d15s, 4 KiB page"
port=18090
for rt in $RUNTIMES; do
	name=$(basename "$rt")
	port=$((port + 1))
	if ! id=$($P --runtime "$rt" run -d $LIM -p "127.0.0.1:$port:80" localhost/nos-bench-nginx:1 2>"$W/err"); then
		echo "$name: cannot run here: $(tail -1 "$W/err")"
		continue
	fi
	i=0
	while ! curl -sf -o /dev/null --max-time 3 "http://127.0.0.1:$port/" && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
	wrk -t2 -c16 -d3s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
	wrk -t2 -c16 -d15s --latency "http://127.0.0.1:$port/" >"$W/wrk" 2>&1
	rps=$(awk '/^Requests\/sec/{print $2}' "$W/wrk")
	p50=$(awk '$1=="50%"{print $2}' "$W/wrk")
	p99=$(awk '$1=="99%"{print $2}' "$W/wrk")
	errs=$(grep -E "Non-2xx|Socket errors" "$W/wrk" | tr '\n' ' ')
	echo "$name: nginx $rps requests/s, latency p50 $p50 p99 $p99 $errs"
	$P stop -t 30 "$id" >/dev/null
	$P rm "$id" >/dev/null
done
