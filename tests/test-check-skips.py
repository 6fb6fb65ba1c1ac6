#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The CI skip gate (.ci/check-skips) on fabricated meson logs: what it lets through and what
it fails.  TAP on stdout."""

import json
import os
import subprocess
import sys
import tempfile

ALLOWED = """# comment
test-a :: kernel/* :: no /dev/iommu here
test-b :: - :: the kernel was not built*
"""


def record(name, result, stdout, returncode=0):
    return {"name": "iommud:unit / " + name, "result": result, "stdout": stdout,
            "returncode": returncode}


CASES = [
    # (description, records, expected exit status)
    ("an allowed subtest skip passes",
     [record("test-a", "OK", "ok 1 - sim/x\nok 2 - kernel/x # SKIP no /dev/iommu here\n1..2\n")],
     0),
    ("a subtest skip for another reason fails",
     [record("test-a", "OK", "ok 1 - kernel/x # SKIP no device in role 1\n1..1\n")], 1),
    ("a subtest skip of another test fails",
     [record("test-c", "OK", "ok 1 - kernel/x # SKIP no /dev/iommu here\n1..1\n")], 1),
    ("an allowed whole-test skip (a plan of 0 with a SKIP directive) passes",
     [record("test-b", "SKIP", "1..0 # SKIP the kernel was not built yet\n")], 0),
    ("a whole-test skip by exit status 77 fails unless listed",
     [record("test-c", "SKIP", "", returncode=77)], 1),
    ("a TAP test whose every subtest skipped counts its subtests, not itself",
     [record("test-a", "SKIP", "ok 1 - kernel/x # SKIP no /dev/iommu here\n1..1\n")], 0),
    ("a guest program that exited 77 fails",
     [record("kernel-vm-intel", "OK", "ok 1 - guest-dma # SKIP the program skipped itself\n"
             "1..1\n")], 1),
    ("a not-ok line with a SKIP directive is a failure to meson, not a skip to allow",
     [record("test-a", "FAIL", "not ok 1 # SKIP kernel/x\n1..1\n")], 0),
    ("a log without tests fails: nothing ran", [], 1),
]


def run(checker, records):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "meson-logs"))
        with open(os.path.join(d, "meson-logs", "testlog.json"), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        allowed = os.path.join(d, "allowed")
        with open(allowed, "w") as f:
            f.write(ALLOWED)
        p = subprocess.run([sys.executable, checker, d, allowed], capture_output=True,
                           text=True)
        return p.returncode, p.stdout + p.stderr


def main():
    checker = sys.argv[1]
    failed = 0
    for n, (what, records, want) in enumerate(CASES, 1):
        rc, out = run(checker, records)
        if rc == want:
            print("ok %d - %s" % (n, what))
        else:
            failed += 1
            print("not ok %d - %s (exit %d, wanted %d)" % (n, what, rc, want))
            for line in out.splitlines():
                print("# " + line)
    print("1..%d" % len(CASES))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
