#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libiommud exports exactly what its version script lists, every listed
symbol exists, and every function the public headers declare is listed.

usage: check-exports.py LIBRARY.so VERSION-SCRIPT HEADER...
Prints TAP.
"""

import re
import subprocess
import sys


def script_symbols(path):
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    nodes = {}
    for node, body in re.findall(r"(\w+)\s*\{(.*?)\}\s*[\w]*\s*;", text, flags=re.S):
        glob = re.search(r"global:(.*?)(local:|$)", body, flags=re.S)
        nodes[node] = set(re.findall(r"([A-Za-z_]\w*)\s*;", glob.group(1) if glob else ""))
    return nodes


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name, _, version = parts[2].partition("@")
        version = version.lstrip("@")
        if parts[1] == "A" and not version:
            continue  # the version node itself
        syms[name] = version
    return syms


def header_functions(paths):
    found = set()
    for path in paths:
        text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
        found |= set(re.findall(r"\b(iommud_\w+)\s*\(", text))
    return found


def main():
    lib, script, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    nodes = script_symbols(script)
    listed = {s: n for n, ss in nodes.items() for s in ss}
    have = exported(lib)
    declared = header_functions(headers)
    checks = []

    missing = sorted(set(listed) - set(have))
    checks.append(("every symbol of the version script is exported", missing))
    extra = sorted(set(have) - set(listed))
    checks.append(("nothing outside the version script is exported", extra))
    wrong = sorted(s for s in listed if s in have and have[s] != listed[s])
    checks.append(("every symbol carries its version node", wrong))
    undeclared = sorted(declared - set(listed))
    checks.append(("every function of the public headers is in the version script", undeclared))
    unlisted = sorted(set(listed) - declared)
    checks.append(("every exported symbol is declared in a public header", unlisted))

    print("1..%d" % len(checks))
    ok = True
    for i, (what, bad) in enumerate(checks, 1):
        if bad:
            ok = False
            print("not ok %d - %s" % (i, what))
            for s in bad:
                print("# %s" % s)
        else:
            print("ok %d - %s" % (i, what))
    print("# %d symbols exported" % len(have))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
