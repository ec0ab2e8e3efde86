#!/bin/sh
# Installs everything spanprobe needs to build, test and demo, from Debian
# bookworm plus bookworm-backports (libbpf >= 1.4 for uprobe_multi and
# session links; bpftool >= 7.5 for skeletons). Idempotent; run as root.
set -eu

STAMP=${1:-/var/lib/spanprobe-deps.v5}
[ -f "$STAMP" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: must run as root (apt-get)" >&2
	exit 1
fi

BPO=/etc/apt/sources.list.d/spanprobe-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$BPO"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	make gcc g++ clang llvm pkg-config binutils \
	libelf-dev libdw-dev zlib1g-dev libzstd-dev libcmocka-dev libiberty-dev libcapstone-dev librust-tokio-dev librust-libc-dev librust-hyper-dev librust-tower-dev \
	python3 libcurl4-openssl-dev liblz4-dev python3-cbor2 python3-lz4 \
	libclang-rt-14-dev valgrind bpftrace
apt-get install -y -q --no-install-recommends -t bookworm-backports \
	libbpf-dev bpftool python3-opentelemetry-proto
# node + npm for the sink tests' trace parser (its npm packages go to
# build/npm-sinks); a node that came with its own npm is kept as it is
command -v npm >/dev/null || apt-get install -y -q --no-install-recommends nodejs npm

touch "$STAMP"
