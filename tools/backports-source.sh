#!/bin/sh
# backports-source.sh CODENAME [FILE...]: prints the one-line APT entry for
# CODENAME-backports, built from the machine's own entry for the main
# archive of CODENAME (suite exactly CODENAME, not -security/-updates),
# so that the mirror, proxy or snapshot host the machine already uses, and
# its Signed-By key, are kept. FILEs default to /etc/apt/sources.list,
# /etc/apt/sources.list.d/*.list and *.sources; one-line (.list) and
# deb822 (.sources) files are both read, whatever the name says.
# Exits 1, printing nothing, when no such entry exists.
set -eu

[ $# -ge 1 ] || { echo "usage: backports-source.sh CODENAME [FILE...]" >&2; exit 2; }
CODENAME=$1
shift
if [ $# = 0 ]; then
	set -- /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
fi

# The first match wins: files are read in the order given (the order APT
# reads them), entries in file order.
for f in "$@"; do
	[ -r "$f" ] || continue
	line=$(awk -v suite="$CODENAME" '
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
	function has_word(list, w,   n, a, i) {
		n = split(list, a, /[ \t]+/)
		for (i = 1; i <= n; i++) if (a[i] == w) return 1
		return 0
	}
	# deb822: a stanza ends at a blank line; fields may continue on
	# lines starting with a space (only the first line of a multi-line
	# Signed-By, an inline key, is kept: then no key is given).
	function flush() {
		if (types != "" && has_word(types, "deb") && has_word(suites, suite) &&
		    tolower(enabled) != "no" && uris != "" && !found) {
			split(trim(uris), u, /[ \t]+/)
			opt = (signed != "" && signed ~ /^\//) ? " [signed-by=" signed "]" : ""
			print "deb" opt " " u[1] " " suite "-backports main"
			found = 1
		}
		types = uris = suites = signed = enabled = ""; last = ""
	}
	/^[ \t]*#/ { next }
	/^[ \t]*$/ { flush(); next }
	/^(deb|deb-src)[ \t]/ {
		# one-line: deb [opts] URI SUITE COMPONENTS...
		if ($1 != "deb" || found) next
		rest = trim(substr($0, 4)); opts = ""
		if (rest ~ /^\[/) {
			opts = substr(rest, 2, index(rest, "]") - 2)
			rest = trim(substr(rest, index(rest, "]") + 1))
		}
		split(rest, w, /[ \t]+/)
		if (w[2] != suite) next
		opt = ""
		n = split(opts, o, /[ \t]+/)
		for (i = 1; i <= n; i++)
			if (o[i] ~ /^signed-by=/) opt = " [" o[i] "]"
		print "deb" opt " " w[1] " " suite "-backports main"
		found = 1
		next
	}
	/^[ \t]/ { next }  # continuation of a multi-line field
	{
		key = tolower(substr($0, 1, index($0, ":") - 1))
		val = trim(substr($0, index($0, ":") + 1))
		if (key == "types") types = val
		else if (key == "uris") uris = val
		else if (key == "suites") suites = val
		else if (key == "signed-by") signed = val
		else if (key == "enabled") enabled = val
	}
	END { flush() }' "$f")
	if [ -n "$line" ]; then
		echo "$line"
		exit 0
	fi
done
exit 1
