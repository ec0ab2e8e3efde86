#!/bin/sh
# Installs the npm packages the sink tests use (package.json and its lock
# beside this script) into build/npm-sinks, never globally. Does nothing
# when that lock is already installed. Prints the node_modules directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DEST=${NPM_SINKS_DIR:-$ROOT/build/npm-sinks}
mkdir -p "$DEST"
if ! cmp -s "$HERE/package-lock.json" "$DEST/.installed-lock" 2>/dev/null ||
   [ ! -d "$DEST/node_modules/@paulirish/trace_engine" ]; then
	cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
	(cd "$DEST" && npm ci --no-audit --no-fund --ignore-scripts >&2)
	cp "$HERE/package-lock.json" "$DEST/.installed-lock"
fi
echo "$DEST/node_modules"
