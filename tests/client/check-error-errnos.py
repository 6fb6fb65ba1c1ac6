#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""One errno per error name: common/error-names.h is the table, libiommud(3) and
org.iommud1(5) must list exactly its errnos, and it must name every error of
org.iommud.Broker.  Usage: check-error-errnos.py error-names.h libiommud.3.scd
org.iommud1.5.scd org.iommud.Broker.varlink"""

import re
import sys


def table(header, macro):
    text = open(header).read()
    body = text[text.index("#define " + macro):]
    body = body[:body.index("\n\n")]
    return dict(re.findall(r'X\("(\w+)", (E\w+)\)', body))


def man_table(path):
    """The |  NAME / :  ERRNO rows of the man page's errno tables."""
    return dict(re.findall(r"^\|  (\S+)\n:  (E[A-Z]+)$", open(path).read(), re.M))


def main():
    header, libman, busman, idl = sys.argv[1:5]
    broker = table(header, "ERROR_NAMES_BROKER")
    varlink = table(header, "ERROR_NAMES_VARLINK")
    lib = man_table(libman)
    bus = man_table(busman)
    idl_errors = re.findall(r"^error (\w+)", open(idl).read(), re.M)
    checks = []
    for name, err in broker.items():
        checks.append((f"libiommud(3) maps {name} to {err}", lib.get(name), err))
        full = "org.iommud.Broker." + name
        checks.append((f"org.iommud1(5) maps {full} to {err}", bus.get(full), err))
    for name, err in varlink.items():
        full = "org.varlink.service." + name
        checks.append((f"libiommud(3) maps {full} to {err}", lib.get(full), err))
    for name in idl_errors:
        checks.append((f"the table has an errno for {name}", name in broker, True))
    for name in lib:
        short = name.removeprefix("org.varlink.service.")
        known = short in broker if short == name else short in varlink
        checks.append((f"libiommud(3)'s {name} is in the table", known, True))
    print(f"1..{len(checks)}")
    failed = 0
    for i, (what, got, want) in enumerate(checks, 1):
        ok = got == want
        failed += not ok
        print(f"{'ok' if ok else 'not ok'} {i} - {what}" + ("" if ok else f" (found {got})"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
