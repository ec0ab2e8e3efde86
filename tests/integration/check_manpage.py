#!/usr/bin/env python3
"""check_manpage.py --man RENDERED --options LIST: every `COMMAND OPTION`
of LIST (usage_options.py) is described in the man page's OPTIONS
section, under the subsection that names COMMAND (`Global` for `-`):
as the tag of an option paragraph, not just mentioned somewhere.
RENDERED is the page as plain text (mandoc -Tascii, no hyphenation)."""
import argparse
import re
import sys


def subsections(text):
    """{title: [lines]} of the OPTIONS section."""
    subs, cur, inside = {}, None, False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            inside = line.strip() == "OPTIONS"
            cur = None
            continue
        if not inside:
            continue
        m = re.match(r"^ {3}(\S.*)$", line)
        if m:
            cur = m.group(1).strip()
            subs[cur] = []
        elif cur:
            subs[cur].append(line)
    return subs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--man", required=True)
    ap.add_argument("--options", required=True)
    a = ap.parse_args()
    subs = subsections(open(a.man).read())
    if not subs:
        sys.exit("check_manpage: no OPTIONS subsections found")
    missing, n = [], 0
    for line in open(a.options):
        cmd, opt = line.split()
        n += 1
        want = "Global" if cmd == "-" else cmd
        titles = [t for t in subs if want in re.split(r"\W+", t)]
        if not titles:
            missing.append(f"{cmd} {opt}: no OPTIONS subsection names '{want}'")
            continue
        # an option paragraph's tag: a line indented 7 that starts with
        # options ("-s, --symbols SYMBOLS", "--min-span D")
        pat = re.compile(r"^ {7}(?:\S+, )*" + re.escape(opt) + r"(?![\w-])")
        if not any(pat.match(l) for t in titles for l in subs[t]):
            missing.append(f"{cmd} {opt}: not described under {' / '.join(titles)}")
    for m in missing:
        print("   missing:", m)
    print(f"   {n - len(missing)}/{n} options of the usage texts described in the man page")
    sys.exit(1 if missing else 0)


main()
