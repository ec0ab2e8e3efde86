#!/bin/sh
# Regenerates the binary seeds of tests/fuzz/corpus from the sources here
# (the checked-in seeds were made with gcc 12, rustc 1.95 on Debian 12).
# Block seeds come from a real spanprobe run: needs root and `make fixtures`.
# Usage: sh tests/fuzz/seeds/gen_seeds.sh   (from the top of the tree)
set -eu
S=tests/fuzz/seeds
C=tests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUSTC=${RUSTC:-$(command -v rustc || echo "$HOME/.cargo/bin/rustc")}
small="-Wl,--build-id=none -Wl,-z,noseparate-code"

# ELF: C with .symtab, C++ with exception tables, .dynsym only
gcc -O2 -fno-omit-frame-pointer $small $S/tiny.c -o "$T/c"
strip --strip-debug "$T/c" -o $C/fuzz_elf/c-symtab
g++ -O2 $small $S/tiny.cpp -o "$T/cxx"
strip --strip-debug "$T/cxx" -o $C/fuzz_elf/cxx-exceptions
gcc -O2 -rdynamic $small $S/tiny.c -o "$T/dyn"
strip --strip-all "$T/dyn" -o $C/fuzz_elf/c-dynsym-only
gcc -O1 -g $small $S/tiny.c -o $C/fuzz_async_dwarf/c-dwarf

# Rust async, no_std so that the binary stays small: with DWARF types,
# line tables only, zlib-compressed DWARF, and none
rflags="--edition 2021 -C opt-level=1 -C panic=abort -C lto=fat -C link-arg=-Wl,--build-id=none -C link-arg=-lc -C link-arg=-Wl,--gc-sections"
# shellcheck disable=SC2086
"$RUSTC" $rflags -C debuginfo=2 $S/tiny_async.rs -o $C/fuzz_async_dwarf/rust-async-dwarf
# shellcheck disable=SC2086
"$RUSTC" $rflags -C debuginfo=1 $S/tiny_async.rs -o $C/fuzz_async_dwarf/rust-async-line-tables
objcopy --compress-debug-sections=zlib $C/fuzz_async_dwarf/rust-async-dwarf $C/fuzz_async_dwarf/rust-async-zdebug
strip --strip-debug $C/fuzz_async_dwarf/rust-async-dwarf -o $C/fuzz_elf/rust-async

# Blocks: first byte even = raw file bytes, odd = a payload to wrap
build/spanprobe run --min-span 0 --min-query 0 -s tests/stress/lifecycle.syms -o "$T/two.bin" -- \
	build/stress/lifecycle -n 2 >/dev/null 2>&1
build/spanprobe run --min-span 0 --min-query 0 -s tests/stress/jmpstorm.syms -o "$T/jmp.bin" -- \
	build/stress/jmpstorm -n 4 >/dev/null 2>&1
python3 - "$T" $C/fuzz_block <<'PY'
import struct, subprocess, sys
t, c = sys.argv[1], sys.argv[2] + "/"
def blocks(path):
    d = open(path, "rb").read()
    out, off = [], 0
    while off < len(d):
        clen = struct.unpack_from("<I", d, off + 12)[0]
        out.append(d[off:off + 32 + clen])
        off += 32 + clen
    return d, out
two, tb = blocks(t + "/two.bin")
jmp, jb = blocks(t + "/jmp.bin")
open(c + "raw-two-blocks", "wb").write(b"\0" + two)
open(c + "raw-one-block", "wb").write(b"\0" + jb[1])
open(c + "raw-truncated", "wb").write(b"\0" + jmp[:-20])
open(c + "raw-garbage-between", "wb").write(b"\0" + jb[0] + b"garbage\x89SPB\r\n" + jb[2])
for i, b in enumerate([tb[0], jb[1]]):
    p = subprocess.run(["zstd", "-d", "-c"], input=b[32:], capture_output=True, check=True).stdout
    open(c + "payload-%d" % i, "wb").write(b"\1" + p)
PY
echo "seeds regenerated in $C"
