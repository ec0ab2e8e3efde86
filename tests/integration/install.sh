# Sourced by run.sh: the install a user expects (issue 15, part 3).

# tools/backports-source.sh on sample APT configurations: one-line and
# deb822, mirrors and proxies, with and without Signed-By; the entry for
# the main archive only (not -security/-updates, not deb-src, not a
# disabled stanza); none at all is exit 1 with nothing printed.
t_apt_backports() {
	d=$(newdir apt)
	cat > "$d/proxy.list" <<'L'
# a proxy (apt-cacher-ng) in front of the archive
deb-src http://deb.debian.org/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/proxy.gpg] http://apt-cache.internal:3142/debian bookworm main contrib
deb http://elsewhere.example/debian bookworm main
L
	cat > "$d/mirror.sources" <<'L'
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
# a comment inside a stanza
URIs: https://mirror.example.org/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
L
	cat > "$d/disabled.sources" <<'L'
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://on.example/debian
Suites: bookworm
Components: main
L
	cat > "$d/nokey.list" <<'L'
deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm main
L
	printf 'deb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' > "$d/none.list"
	printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-updates\nComponents: main\n' > "$d/none.sources"
	bs="sh tools/backports-source.sh bookworm"
	ok=0
	expect() {  # expect WANT FILE...
		_want=$1; shift
		_got=$($bs "$@" 2>&1) || _got="exit $?${_got:+: $_got}"
		if [ "$_got" != "$_want" ]; then
			fail "backports-source.sh $*: got '$_got', want '$_want'"
			ok=1
		fi
	}
	expect "deb [signed-by=/usr/share/keyrings/proxy.gpg] http://apt-cache.internal:3142/debian bookworm-backports main" "$d/proxy.list"
	expect "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] https://mirror.example.org/debian/ bookworm-backports main" "$d/mirror.sources"
	expect "deb http://on.example/debian bookworm-backports main" "$d/disabled.sources"
	expect "deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm-backports main" "$d/nokey.list"
	expect "exit 1" "$d/none.list" "$d/none.sources"
	# files are taken in order; unreadable ones skipped
	expect "deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm-backports main" \
		"$d/missing.list" "$d/none.list" "$d/nokey.list" "$d/proxy.list"
	[ $ok = 0 ] || return 1
	# the machine's own configuration gives an entry APT can use
	live=$($bs) || { fail "no bookworm source found on this machine"; return 1; }
	echo "   6 samples derived as expected; this machine: $live"
}
