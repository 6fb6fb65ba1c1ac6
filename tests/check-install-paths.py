#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every file 'meson install' writes goes below the prefix (or an absolute -D directory the
builder chose), unless the prefix is /usr, where the .pc files of systemd, D-Bus and polkit
decide; and libiommud.pc gives a client no other package's flags to compile with (iommud.h
includes nothing of json-c).  Reads the build directory.  TAP on stdout."""

import json
import os
import sys

# Options whose absolute value the builder chose to put outside the prefix.
DIR_OPTIONS = ("systemdunitdir", "tmpfilesdir", "sysconfdir", "localstatedir")


def main():
    info = os.path.join(sys.argv[1], "meson-info")
    with open(os.path.join(info, "intro-buildoptions.json")) as f:
        options = {o["name"]: o["value"] for o in json.load(f)}
    with open(os.path.join(info, "intro-installed.json")) as f:
        installed = sorted(set(json.load(f).values()))
    prefix = options["prefix"].rstrip("/") + "/"
    with open(os.path.join(sys.argv[1], "meson-private", "libiommud.pc")) as f:
        requires = [line.strip() for line in f if line.startswith("Requires")]
    n = 1
    failed = len(requires)
    print("%s 1 - libiommud.pc requires no package for compiling%s"
          % ("not ok" if requires else "ok", ": " + "; ".join(requires) if requires else ""))
    if prefix == "/usr/":
        print("ok 2 # SKIP the prefix is /usr: the .pc files of the host decide")
        print("1..2")
        return 1 if failed else 0
    chosen = [options[o].rstrip("/") + "/" for o in DIR_OPTIONS
              if isinstance(options.get(o), str) and options[o].startswith("/")]
    for path in installed:
        n += 1
        if path.startswith(prefix) or any(path.startswith(c) for c in chosen):
            print("ok %d - %s" % (n, path))
        else:
            failed += 1
            print("not ok %d - %s is outside the prefix %s" % (n, path, prefix))
    print("1..%d" % n)
    return 1 if failed or n == 1 else 0


if __name__ == "__main__":
    sys.exit(main())
