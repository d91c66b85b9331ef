#!/bin/sh
# nos compose up of the two-service application of the e2e test (a Go
# front end and Debian's redis on a named volume, redis health-checked),
# inside a network namespace this script makes: the time from `nos compose
# up -d` until redis is healthy (up returns after that, having started the
# front end) and until the front end answers through its published port.
# The first round builds the front end's image; the others reuse it.
#   NOS=bin/nos RUNS=3 scripts/bench-compose.sh   (root)
set -eu
NOS=$(readlink -f "${NOS:-bin/nos}")
RUNS=${RUNS:-3}
ACCEL=${ACCEL:-tcg}
ns=nos-bench-compose-$$
work=$(mktemp -d /var/tmp/nos-bench-compose.XXXXXX)
export NOS_HOME=$work/home
N() { ip netns exec "$ns" "$NOS" "$@"; }
cleanup() {
	N compose -f "$work/compose.yaml" -p bench down -v >/dev/null 2>&1 || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "$NOS_HOME/cache" "$work/mnt"
ln -s "${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built" "$NOS_HOME/cache/kernels-built"
chown 65534:65534 "$work/mnt"
$NOS build -t redis --user 65534 --port 6379 --add "$work/mnt:/data" \
	--entrypoint '["/usr/bin/redis-server","--port","6379","--protected-mode","no","--save","","--dir","/data"]' /usr/bin/redis-server >/dev/null 2>&1
cat >"$work/compose.yaml" <<YAML
services:
  web:
    build: $(pwd)/e2e/testdata/composeweb
    ports: ["127.0.0.1:18480:8080"]
    depends_on:
      redis:
        condition: service_healthy
  redis:
    image: redis
    command: ["--appendonly", "yes", "--appendfsync", "always"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      retries: 120
volumes:
  data:
YAML
run=1
while [ $run -le "$RUNS" ]; do
	t0=$(date +%s.%N)
	N compose -f "$work/compose.yaml" -p bench up -d --accel "$ACCEL" >/dev/null 2>&1
	t1=$(date +%s.%N)
	until ip netns exec "$ns" curl -s --max-time 2 http://127.0.0.1:18480/v >/dev/null 2>&1; do sleep 0.1; done
	t2=$(date +%s.%N)
	echo "run $run up_returned_after $(echo "$t1 - $t0" | bc) s, front_end_answers_after $(echo "$t2 - $t0" | bc) s"
	N compose -f "$work/compose.yaml" -p bench down >/dev/null 2>&1
	run=$((run + 1))
done
