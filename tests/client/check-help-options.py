#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The options a program's --help lists and those its man page documents are
the same set.

usage: check-help-options.py PROGRAM PAGE.scd [SECTION,...]    (prints TAP)

SECTION defaults to OPTIONS; terms of every section named count.
"""

import re
import subprocess
import sys


def main():
    program, page = sys.argv[1:3]
    sections = sys.argv[3].split(",") if len(sys.argv) > 3 else ["OPTIONS"]
    helptext = subprocess.run([program, "--help"], check=True, capture_output=True,
                              text=True).stdout
    in_help = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", helptext))
    text = open(page).read()
    options = "".join(text.split("\n# " + s + "\n", 1)[1].split("\n# ", 1)[0]
                      for s in sections)
    # Documented options are the terms of the OPTIONS section: lines that start with '*'.
    in_page = set()
    for line in options.splitlines():
        if line.startswith("*"):
            in_page.update(re.findall(r"\*(--[a-z][a-z0-9-]*)\*", line))
    checks = []
    for opt in sorted(in_help):
        checks.append((opt in in_page, "%s from --help is documented" % opt))
    for opt in sorted(in_page - in_help):
        checks.append((False, "%s is documented but not in --help" % opt))
    print("1..%d" % len(checks))
    for i, (ok, what) in enumerate(checks, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, what))
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
