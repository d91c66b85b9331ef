#!/bin/sh
# Installs what nos needs on a Debian/Ubuntu host when it is missing:
# QEMU, and a guest kernel in nos's own cache (not in /boot).
set -eu
NOS=${NOS:-bin/nos}

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	as_root apt-get update -q
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends $missing
fi

# A fetched distribution kernel (origin "cache"); nos's own kernel is built
# by `make kernel` / `make test`.
if ! "$NOS" kernel ls 2>/dev/null | grep -q '[[:space:]]cache[[:space:]]'; then
	echo "deps: fetching Debian's cloud kernel into nos's cache"
	"$NOS" kernel fetch
fi
"$NOS" kernel ls
