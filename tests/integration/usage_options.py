#!/usr/bin/env python3
"""usage_options.py SPANPROBE: every option spanprobe's own usage texts
name, one `COMMAND OPTION` line each (COMMAND `-` for the global ones),
read from `SPANPROBE --help` and `SPANPROBE COMMAND --help` for each
command the first lists. Nothing is hard-coded: an option added to a
usage text is checked (man page, completion) without touching the tests."""
import re
import subprocess
import sys

OPT = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)")


def help_text(sp, *args):
    r = subprocess.run([sp, *args, "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"usage_options: {sp} {' '.join(args)} --help exited {r.returncode}: {r.stderr}")
    return r.stdout


def take(text, cmd, out):
    """The options of a usage text: those of its `spanprobe CMD ...` lines
    (for CMD; `spanprobe --opt` lines are global), and those that start an
    option-list line (`  -s, --symbols FILE   description`). Prose that
    mentions another command's option is not read."""
    for line in text.splitlines():
        m = re.match(r"\s*(?:usage:)?\s*spanprobe\s+(\S+)(.*)", line)
        if m and m.group(1).startswith("-"):
            out.update(("-", o) for o in OPT.findall(m.group(1) + m.group(2)))
        elif m:
            if cmd is None or m.group(1) == cmd:
                out.update((m.group(1), o) for o in OPT.findall(m.group(2)))
        elif re.match(r"\s+-", line):
            head = re.split(r"(?<=\S)\s{2,}", line.strip() + "  ", maxsplit=1)[0]
            out.update((cmd or "-", o) for o in OPT.findall(head))


def main():
    sp = sys.argv[1]
    top = help_text(sp)
    cmds = []
    for line in top.splitlines():
        m = re.match(r"\s*(?:usage:\s*)?spanprobe\s+([a-z]+)\b", line)
        if m and m.group(1) not in cmds:
            cmds.append(m.group(1))
    if len(cmds) < 5:
        sys.exit(f"usage_options: only {cmds} found as commands in:\n{top}")
    out = set()
    take(top, None, out)
    for c in cmds:
        take(help_text(sp, c), c, out)
    for c, o in sorted(out):
        print(c, o)


main()
