#!/bin/sh
# A private PostgreSQL 15 cluster for the USDT tests:
#   pg_cluster.sh start DIR   initdb DIR/data as user postgres (initdb
#                             refuses root), start it listening only on a
#                             unix socket in DIR: no port to collide with
#   pg_cluster.sh stop DIR    stop it (fast shutdown)
# Needs Debian's postgresql-15 (tools/install-deps.sh installs it).
set -eu
BIN=/usr/lib/postgresql/15/bin
cmd=$1 dir=$2
as_pg() { su postgres -s /bin/sh -c "$1"; }
case $cmd in
start)
	[ -x "$BIN/postgres" ] || { echo "pg_cluster: $BIN/postgres missing (apt-get install postgresql-15)" >&2; exit 1; }
	id postgres >/dev/null 2>&1 || { echo "pg_cluster: no user postgres" >&2; exit 1; }
	mkdir -p "$dir"
	chown postgres "$dir"
	chmod 0755 "$dir"
	as_pg "$BIN/initdb -D '$dir/data' -A trust -U postgres" >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	# jit=off: LLVM would inline pg_sleep into generated code, so its
	# uprobe would never fire (docs: real-targets notes)
	as_pg "$BIN/pg_ctl -D '$dir/data' -l '$dir/pg.log' -w -t 60 start -o \"-k '$dir' -c listen_addresses= -c jit=off\"" >"$dir/pg_ctl.log" 2>&1 ||
		{ cat "$dir/pg_ctl.log" "$dir/pg.log" >&2; exit 1; }
	;;
stop)
	[ -d "$dir/data" ] && as_pg "$BIN/pg_ctl -D '$dir/data' -m fast -w stop" >/dev/null 2>&1 || :
	;;
esac
