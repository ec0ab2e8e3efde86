#!/bin/sh
# Installs everything spanprobe needs to build, test and demo, from Debian
# bookworm plus bookworm-backports (libbpf >= 1.4 for uprobe_multi and
# session links; bpftool >= 7.5 for skeletons). Idempotent; run as root.
set -eu

STAMP=${1:-/var/lib/spanprobe-deps.v9}
[ -f "$STAMP" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: must run as root (apt-get)" >&2
	exit 1
fi

# bookworm-backports from the host the machine already uses for bookworm
# (a mirror, a proxy, a snapshot: tools/backports-source.sh), written only
# when no other source carries it; rewritten when the derived entry
# changed (e.g. from the fixed deb.debian.org line of older versions).
BPO=/etc/apt/sources.list.d/spanprobe-bookworm-backports.list
if ! grep -lqs '^[^#]*bookworm-backports' /etc/apt/sources.list \
	$(ls /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -vx "$BPO"); then
	if ! entry=$(sh "$(dirname "$0")/backports-source.sh" bookworm \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
		2>/dev/null) || [ -z "$entry" ]; then
		echo "install-deps: no APT source for bookworm's main archive in /etc/apt/sources.list{,.d/}: cannot add bookworm-backports" >&2
		exit 1
	fi
	[ "$(cat "$BPO" 2>/dev/null)" = "$entry" ] || echo "$entry" > "$BPO"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	make gcc g++ clang llvm pkg-config binutils \
	zlib1g-dev libzstd-dev libcmocka-dev libiberty-dev libcapstone-dev librust-tokio-dev librust-libc-dev \
	librust-hyper-dev librust-tower-dev \
	python3 libcurl4-openssl-dev liblz4-dev python3-cbor2 python3-lz4 \
	libclang-rt-14-dev valgrind bpftrace \
	groff-base mandoc systemtap-sdt-dev postgresql-15 postgresql-client-15
# (postgresql-15 brings no running cluster: tests initdb their own)
# linux-libc-dev: <linux/bpf.h> must know uprobe_multi links (6.6+);
# bookworm's own headers are 6.1. elfutils 0.192: libdw reads split DWARF
# packages (.dwp, split-debuginfo = "packed") from 0.191 on; bookworm's
# 0.188 reads .dwo files only
apt-get install -y -q --no-install-recommends -t bookworm-backports \
	libbpf-dev bpftool python3-opentelemetry-proto linux-libc-dev \
	libelf-dev libdw-dev libdebuginfod-dev debuginfod
# node + npm for the sink tests' trace parser (its npm packages go to
# build/npm-sinks); a node that came with its own npm is kept as it is
command -v npm >/dev/null || apt-get install -y -q --no-install-recommends nodejs npm

touch "$STAMP"
