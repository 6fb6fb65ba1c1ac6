#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The house rules, checked on every build: which folder's code may include which
# folder's headers.  The build's include directories already refuse most breaches;
# this test states the rules in one place and catches the rest (a header reached
# through another layer's include path).  TAP on stdout, one line per folder.

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")

# folder -> folders whose headers it may include (its own is always allowed).
RULES = {
    "common": [],
    "topology": ["common"],
    "policy": ["common", "topology"],
    "daemon/backend": ["common"],
    "daemon/backend/kernel": ["common", "daemon/backend"],
    "daemon/backend/sim": ["common", "topology", "daemon/backend"],
    "daemon/backend/vfio": ["common", "daemon/backend", "daemon/backend/kernel"],
    "daemon/core": ["common", "topology", "policy", "daemon/backend"],
    # Restart survival of sessions: JSON over the core's private tables.
    "daemon/core/state": ["common", "topology", "policy", "daemon/backend", "daemon/core"],
    "daemon/varlink": ["common", "topology", "policy", "daemon/backend", "daemon/core"],
    "daemon/dbus": ["common", "topology", "policy", "daemon/backend", "daemon/core"],
    "daemon": None,  # the composition root sees everything
    "client": ["common", "include/iommud", "policy", "topology"],
}

# Headers of one folder that another folder may use although the folder as a whole is off
# limits, each with the reason.
EXCEPTIONS = {
    # The Simulator interface drives the simulated backend: it exists only with --sim.
    ("daemon/varlink", "daemon/backend/sim"): {"backend-sim.h", "simtopo.h"},
    # OpenSession hands a D-Bus caller a socket already connected to a broker session.
    ("daemon/dbus", "daemon/varlink"): {"varlink-broker.h", "varlink-server.h"},
    # The broker writes each of its sessions' records into the restart state.
    ("daemon/varlink", "daemon/core/state"): {"session-state.h"},
}

# Headers private to the folders named, whoever else may see their folder (the composition
# root included): the session's tables are the core's and its restart state's alone.
PRIVATE = {
    "session-internal.h": {"daemon/core", "daemon/core/state"},
}

# Within core/, the backend is reached through its interface only.
# The names of the hardware capabilities (backend-names.h) go with the interface for the core
# and the transports, which report them; the restart state keeps bits, not names.
ONLY = {("daemon/core", "daemon/backend"): {"backend.h", "backend-names.h"},
        ("daemon/core/state", "daemon/backend"): {"backend.h"},
        # The legacy VFIO ABI shares its ioctl type and base with the VFIO cdev ioctls.
        ("daemon/backend/vfio", "daemon/backend/kernel"): {"iommufd-abi.h"},
        ("daemon/varlink", "daemon/backend"): {"backend.h", "backend-names.h"},
        ("daemon/dbus", "daemon/backend"): {"backend.h", "backend-names.h"}}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(path):
    return os.path.relpath(os.path.dirname(path), ROOT)


def main():
    headers = {}
    sources = []
    for top in RULES:
        d = os.path.join(ROOT, top)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.endswith(".h"):
                headers.setdefault(name, set()).add(top)
            if name.endswith((".c", ".h")):
                sources.append((top, p))

    failures = {}
    for top, path in sources:
        allowed = RULES[top]
        text = open(path, encoding="utf-8").read()
        for inc in INCLUDE.findall(text):
            base = os.path.basename(inc)
            homes = headers.get(base)
            if not homes:
                continue  # generated (config.h) or a system-style header
            if base in PRIVATE and top not in PRIVATE[base]:
                failures.setdefault(top, []).append(
                    f"{os.path.relpath(path, ROOT)} includes {inc}, private to "
                    f"{' and '.join(sorted(PRIVATE[base]))}")
                continue
            if top in homes or allowed is None:
                continue
            ok = False
            for home in homes:
                if home in allowed:
                    only = ONLY.get((top, home))
                    ok = only is None or base in only
                elif base in EXCEPTIONS.get((top, home), set()):
                    ok = True
            if not ok:
                failures.setdefault(top, []).append(
                    f"{os.path.relpath(path, ROOT)} includes {inc} from {'/'.join(sorted(homes))}")

    tops = [t for t in RULES if os.path.isdir(os.path.join(ROOT, t))]
    print(f"1..{len(tops)}")
    for i, top in enumerate(tops, 1):
        if top in failures:
            print(f"not ok {i} - {top} keeps to its layer")
            for f in failures[top]:
                print(f"# {f}")
        else:
            print(f"ok {i} - {top} keeps to its layer")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
