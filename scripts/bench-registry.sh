#!/bin/sh
# Registry benchmarks (issue 12), no VM involved: push and pull of the
# example HTTP server's image to Debian's docker-registry on a loopback
# port, against crane (go-containerregistry's own CLI, built from the Go
# module proxy at the version in go.mod) pushing and pulling the same
# artefact, and a plain HTTP GET of the same blobs from the same registry.
# Every push goes to a new repository (all blobs uploaded), every pull
# into a new store. Prints one line per run and the medians; BENCHMARKS.md
# has them.   NOS=bin/nos RUNS=7 scripts/bench-registry.sh
# (NOS_PUSH_FLAGS=--sbom=false: push without the bill of materials.)
set -eu
NOS=$(readlink -f "${NOS:-bin/nos}")
RUNS=${RUNS:-7}
GO=${GO:-go}
work=$(mktemp -d /var/tmp/nos-bench-registry.XXXXXX)
cleanup() {
	[ -n "${regpid:-}" ] && kill "$regpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export DOCKER_CONFIG=$work/docker
ver=$($GO list -m -f '{{.Version}}' github.com/google/go-containerregistry)
GOBIN=$work/bin $GO install "github.com/google/go-containerregistry/cmd/crane@$ver"
crane=$work/bin/crane

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat > "$work/config.yml" <<CONF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: $reg
CONF
docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

home() {
	mkdir -p "$1/cache"
	ln -s "${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels-built" "$1/cache/kernels-built"
	ln -s "${XDG_DATA_HOME:-$HOME/.local/share}/nos/cache/kernels" "$1/cache/kernels"
}
now() { date +%s.%N; }
home "$work/a"
NOS_HOME=$work/a "$NOS" build -t web ./examples/httpserver >/dev/null 2>&1
size=$(NOS_HOME=$work/a "$NOS" inspect --format '{{.Size}}' web)
NOS_HOME=$work/a "$NOS" save -o "$work/web.tar" web
mkdir "$work/layout" && tar -C "$work/layout" -xf "$work/web.tar"
blobs=$(NOS_HOME=$work/a "$NOS" inspect --format '{{.Manifest.Config.Digest}}{{range .Manifest.Layers}} {{.Digest}}{{end}}' web)
echo "image: example HTTP server, $size bytes; registry $reg; crane $ver; $RUNS runs"

for i in $(seq "$RUNS"); do
	# shellcheck disable=SC2086
	t0=$(now); NOS_HOME=$work/a "$NOS" push ${NOS_PUSH_FLAGS:-} web "$reg/nos/web$i:1" >/dev/null; t1=$(now)
	home "$work/b$i"
	NOS_HOME=$work/b$i "$NOS" pull "$reg/nos/web$i:1" >/dev/null; t2=$(now)
	"$crane" push "$work/layout" "$reg/crane/web$i:1" >/dev/null 2>&1; t3=$(now)
	"$crane" pull --format oci "$reg/crane/web$i:1" "$work/c$i" >/dev/null 2>&1; t4=$(now)
	for d in $blobs; do curl -fs -o /dev/null "http://$reg/v2/nos/web$i/blobs/$d"; done; t5=$(now)
	echo "$t0 $t1 $t2 $t3 $t4 $t5" | awk -v s="$size" '{
		printf "run: nos-push %.3f s  nos-pull %.3f s  crane-push %.3f s  crane-pull %.3f s  http-get %.3f s\n", $2-$1, $3-$2, $4-$3, $5-$4, $6-$5 }'
	rm -rf "$work/b$i" "$work/c$i"
done | tee "$work/runs"
awk -v s="$size" '
function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{ n++; np[n] = $3; nl[n] = $6; cp[n] = $9; cl[n] = $12; hg[n] = $15 }
END {
	split("nos push,nos pull,crane push,crane pull,plain HTTP GET of the blobs", names, ",")
	m[1] = median(np, n); m[2] = median(nl, n); m[3] = median(cp, n); m[4] = median(cl, n); m[5] = median(hg, n)
	for (k = 1; k <= 5; k++) printf "median %-45s %.3f s  %.1f MB/s\n", names[k], m[k], s / m[k] / 1e6
}' "$work/runs"
