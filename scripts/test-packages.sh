#!/bin/sh
# Installs the Debian packages whose programs the integration tests package
# as nos images (nginx, redis, python3, etcd), the registry the OCI test pulls
# from, libvirt (the export test), and erofs-utils, which nos build needs for root disks.
set -eu
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
missing=""
command -v lz4 >/dev/null 2>&1 || missing="$missing lz4"
command -v mkfs.erofs >/dev/null 2>&1 || missing="$missing erofs-utils"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
# libvirt's system daemon and virsh, for the libvirt export test (which
# starts libvirtd and virtlogd when they are not running).
command -v libvirtd >/dev/null 2>&1 || missing="$missing libvirt-daemon-system"
command -v virsh >/dev/null 2>&1 || missing="$missing libvirt-clients"
# The network tests list nos's nftables tables with nft; QEMU's virtiofsd
# (host directories) comes with qemu-system-x86.
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
[ -x /usr/lib/qemu/virtiofsd ] || missing="$missing qemu-system-x86"
if [ -n "$missing" ]; then
	echo "test-packages: installing$missing"
	as_root apt-get update -q
	# Packages' services are not started: the tests run the programs.
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends $missing
fi
