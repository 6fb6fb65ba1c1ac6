#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The example outputs of the man pages and README.md are today's output.

usage: test-man-examples.py --iommud BIN --iommuctl BIN FILE...    (prints TAP)

Starts iommud on the simulated workstation with the shipped policy and a grant to the caller
(as tools/run does), then, for every ``` block of each FILE, runs each "$ iommuctl ..." or
"# iommuctl ..." line against it and compares what the block shows after it: white space is
not significant (pages wrap lines), a line "..." stands for any output, and "$ echo $?" is the
previous exit status.  Commands with a pipe or && are skipped: the block shows no output of
theirs.
"""

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def examples(path):
    """(line number, command, expected lines) of every command in a ``` block of path."""
    out, block, cur = [], None, None
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if line.strip().startswith("```"):
            block = [] if block is None else None
            cur = None
            continue
        if block is None:
            continue
        m = re.match(r"^[$#] (.*)$", line)
        if cur and cur[1].endswith("\\") and not cur[2]:
            # A command continued on the next line.
            out[-1] = cur = (cur[0], cur[1][:-1] + " " + line.strip(), [])
        elif m:
            cur = (n, m.group(1), [])
            out.append(cur)
        elif cur:
            cur[2].append(line)
    return out


def norm(text):
    return " ".join(text.split())


def matches(expected, actual):
    """Each run of expected lines between '...' lines appears in actual, in order."""
    segments, seg = [], []
    for line in expected:
        if line.strip() == "...":
            segments.append(seg)
            seg = []
        else:
            seg.append(line)
    segments.append(seg)
    text, pos = norm(actual), 0
    for seg in segments:
        want = norm("\n".join(seg))
        if not want:
            continue
        i = text.find(want, pos)
        if i < 0:
            return False
        pos = i + len(want)
    return True


def start(args, tmp):
    vendor, admin = os.path.join(tmp, "vendor"), os.path.join(tmp, "admin")
    os.makedirs(vendor)
    os.makedirs(admin)
    shutil.copy(os.path.join(SOURCE, "policy", "default.json"),
                os.path.join(vendor, "50-default.json"))
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w") as f:
        f.write('{ "grants": { "demo": { "principals": [ "user:%d" ], "devices": "*", '
                '"open-on-behalf": true } } }\n' % os.getuid())
    sock = os.path.join(tmp, "org.iommud.Broker")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    d = subprocess.Popen([args.iommud, "--sim", "workstation", "--runtime-dir", tmp,
                          "--socket", sock, "--vendor-policy-dir", vendor, "--policy-dir", admin,
                          "--policy", policy, "--log-level", "err"], env=env)
    for _ in range(200):
        if os.path.exists(sock):
            c = socket.socket(socket.AF_UNIX)
            try:
                c.connect(sock)
                return d, sock
            except OSError:
                pass
            finally:
                c.close()
        if d.poll() is not None:
            break
        time.sleep(0.05)
    d.kill()
    raise RuntimeError("iommud did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iommud", required=True)
    ap.add_argument("--iommuctl", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="man-examples-")
    d, sock = start(args, tmp)
    env = dict(os.environ, IOMMUD_SOCKET=sock)
    for k in ("COLUMNS", "NO_COLOR"):
        env.pop(k, None)
    n = failed = 0
    try:
        for path in args.files:
            rc = None
            for line, cmd, expected in examples(path):
                where = "%s:%d: %s" % (os.path.relpath(path, SOURCE), line, cmd)
                if cmd == "echo $?":
                    n += 1
                    ok = rc is not None and norm("\n".join(expected)) == str(rc)
                    print("%s %d - %s" % ("ok" if ok else "not ok", n, where))
                    failed += not ok
                    continue
                argv = shlex.split(cmd)
                # exec runs another program (a VMM): its examples are not for this host.
                if (not argv or argv[0] != "iommuctl" or "|" in cmd or "&&" in cmd or
                        "exec" in argv[1:2]):
                    rc = None
                    continue
                # The example's socket is this daemon's.
                for opt in ("--socket", "-s"):
                    while opt in argv[:-1]:
                        i = argv.index(opt)
                        del argv[i:i + 2]
                p = subprocess.run([args.iommuctl] + argv[1:], capture_output=True, text=True,
                                   env=env)
                rc = p.returncode
                n += 1
                ok = matches(expected, p.stdout + p.stderr) and (expected or rc == 0)
                print("%s %d - %s" % ("ok" if ok else "not ok", n, where))
                if not ok:
                    failed += 1
                    for l in (p.stdout + p.stderr).splitlines():
                        print("# " + l)
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    return 1 if failed or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
