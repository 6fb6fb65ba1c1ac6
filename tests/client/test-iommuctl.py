#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""iommuctl against a live iommud on a simulated host.

Starts `iommud --sim TOPOLOGY` in a private runtime directory with a policy
that grants the calling user every device, runs iommuctl's verbs and compares
their exit status, standard output and standard error with the golden files
in GOLDEN/TOPOLOGY/ (after masking what changes from run to run: the
temporary directory, uids, pids, uptime).  Also: the CDI spec passes the
validator, and `monitor` sees a session open and close and a policy reload.

usage: test-iommuctl.py --iommud BIN --iommuctl BIN --golden DIR --topology NAME
                        --cdi-validator SCRIPT [--update]
Prints TAP.  --update rewrites the golden files instead of comparing.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

UID = os.getuid()
GID = os.getgid()

POLICY = """{
  "rules": { "all": { "action": "allow", "match": "*" } },
  "grants": {
    "self": {
      "principals": [ { "user": %d } ],
      "devices": "*",
      "open-on-behalf": true,
      "delegation": true
    }
  }
}
""" % UID

BROKEN_POLICY = """{
  "rules": { "all": { "action": "allow", "match": "*" } },
  "grants": { "self": { "principals": [ { "user": %d } ], "devices": 42 } }
}
""" % UID


class Runner:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="iommuctl-")
        self.rt = os.path.join(self.tmp, "rt")
        self.socket = os.path.join(self.rt, "org.iommud.Broker")
        self.policy = os.path.join(self.tmp, "policy.json")
        self.n = 0
        self.failed = 0
        self.daemon = None
        os.makedirs(os.path.join(self.tmp, "vendor"))
        os.makedirs(os.path.join(self.tmp, "policy.d"))
        with open(self.policy, "w") as f:
            f.write(POLICY)
        self.env = dict(os.environ)
        for k in ("IOMMUD_SOCKET", "COLUMNS", "NO_COLOR", "NOTIFY_SOCKET"):
            self.env.pop(k, None)
        self.env["IOMMUD_SOCKET"] = self.socket

    def start(self):
        log = open(os.path.join(self.tmp, "iommud.log"), "w")
        self.daemon = subprocess.Popen(
            [self.args.iommud, "--sim", self.args.topology, "--runtime-dir", self.rt,
             "--vendor-policy-dir", os.path.join(self.tmp, "vendor"),
             "--policy-dir", os.path.join(self.tmp, "policy.d"), "--policy", self.policy],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        # Wait until it accepts connections (or exits); the cap only bounds a broken start.
        for _ in range(400):
            if self.daemon.poll() is not None:
                raise RuntimeError("iommud exited with %d: %s" %
                                   (self.daemon.returncode, open(log.name).read()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise RuntimeError("iommud did not start listening on %s" % self.socket)

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mask(self, text):
        text = text.replace(self.tmp, "@TMP@")
        text = re.sub(r"\buid %d\b" % UID, "uid @UID@", text)
        text = re.sub(r"\bgid %d\b" % GID, "gid @GID@", text)
        text = re.sub(r'"uid": %d\b' % UID, '"uid": "@UID@"', text)
        text = re.sub(r'"gid": %d\b' % GID, '"gid": "@GID@"', text)
        text = re.sub(r'"pid": \d+', '"pid": "@PID@"', text)
        text = re.sub(r"\(pid \d+\)", "(pid @PID@)", text)
        text = re.sub(r'"uptime": \d+', '"uptime": "@UPTIME@"', text)
        text = re.sub(r"(Uptime: ).*", r"\1@UPTIME@", text)
        return text

    def ctl(self, *argv, stdin=None):
        p = subprocess.run([self.args.iommuctl] + list(argv), capture_output=True, text=True,
                           env=self.env, input=stdin)
        return p.returncode, p.stdout, p.stderr

    def ok(self, cond, what, diag=""):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, what))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, what))
            for line in diag.splitlines():
                print("# " + line)

    def golden(self, name, *argv, expect=None, table_pid=False):
        """Runs iommuctl argv and compares with GOLDEN/TOPOLOGY/name."""
        rc, out, err = self.ctl(*argv)
        if table_pid:
            # The PID column of the sessions table: third column of each data row.
            # The UID and PID columns of the sessions table, and the padding their widths change.
            out = re.sub(r"(?m)^(\d+\s+)(\d+)(\s+)(\d+)",
                         lambda m: m.group(1) + ("@UID@" if int(m.group(2)) == UID else m.group(2))
                         + m.group(3) + "@PID@", out)
            out = re.sub(r" {2,}", "  ", out)
        got = self.mask("$ iommuctl %s\nexit %d\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(argv), rc, out, err))
        path = os.path.join(self.args.golden, self.args.topology, name)
        if self.args.update:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(got)
        want = open(path).read() if os.path.exists(path) else None
        diag = ""
        if want != got:
            import difflib
            diag = "".join(difflib.unified_diff((want or "").splitlines(True),
                                                got.splitlines(True), path, "got"))
        self.ok(want == got and (expect is None or rc == expect),
                "%s: iommuctl %s (exit %d)" % (name, " ".join(argv), rc), diag)
        return rc, out, err

    def devices(self):
        rc, out, _ = self.ctl("--json", "devices", "--all")
        return json.loads(out)["devices"] if rc == 0 else []

    def monitor(self):
        """monitor sees a policy reload, then a session open and close."""
        p = subprocess.Popen([self.args.iommuctl, "--json", "monitor"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env)
        events = []
        pending = [b""]

        def read_until(pred, poke=None):
            # Waits for an event matching pred; poke() re-triggers while the
            # stream may not be registered yet.  Bounded so a bug cannot hang.
            # Reads the raw fd: a buffered reader would hide lines from select().
            fd = p.stdout.fileno()
            for _ in range(200):
                if poke:
                    poke()
                r, _, _ = select.select([fd], [], [], 0.1)
                while r:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        return False
                    pending[0] += chunk
                    *lines, pending[0] = pending[0].split(b"\n")
                    for line in lines:
                        events.append(json.loads(line))
                        if pred(events[-1]):
                            return True
                    r, _, _ = select.select([fd], [], [], 0)
            return False

        try:
            seen_reload = read_until(lambda e: e["type"] == "policy-reloaded",
                                     lambda: self.ctl("reload"))
            self.ok(seen_reload, "monitor: sees policy-reloaded",
                    json.dumps(events, indent=1))
            events.clear()
            rc, _, _ = self.ctl("status")

            def opened_and_closed(_):
                opened = [e["session"] for e in events if e["type"] == "session-opened"]
                return any(e["type"] == "session-closed" and e["session"] in opened
                           for e in events)

            seen = read_until(opened_and_closed) if rc == 0 else False
            opened = [e for e in events if e["type"] == "session-opened"]
            self.ok(seen and opened[0]["uid"] == UID and opened[0]["message"],
                    "monitor: sees the session of another client open and close",
                    json.dumps(events, indent=1))
        finally:
            p.terminate()
            p.wait()
        p2 = subprocess.run([self.args.iommuctl, "monitor", "--count", "x"], capture_output=True,
                            env=self.env)
        self.ok(p2.returncode == 2, "monitor --count x is a usage error")

    def cdi(self):
        outdir = os.path.join(self.tmp, "cdi")
        rc, out, err = self.golden("cdi-generate", "cdi", "generate", "--output", outdir)
        path = os.path.join(outdir, "iommud.org-vfio.json")
        if rc == 0 and os.path.exists(path):
            v = subprocess.run([sys.executable, self.args.cdi_validator, path],
                               capture_output=True, text=True)
            self.ok(v.returncode == 0, "cdi: the spec is valid CDI 0.5.0", v.stdout + v.stderr)
            left = [f for f in os.listdir(outdir) if f != "iommud.org-vfio.json"]
            self.ok(not left, "cdi: no temporary file left behind", " ".join(left))
            self.ok(oct(os.stat(path).st_mode & 0o777) == oct(0o644), "cdi: the spec is 0644")
        else:
            self.ok(rc == 0 or "No device" in err, "cdi: nothing eligible, nothing written")
        self.golden("cdi-stdout", "cdi", "generate", "--stdout", "--with-iommufd")

    def check_config(self):
        vendor = os.path.join(self.tmp, "vendor")
        admin = os.path.join(self.tmp, "policy.d")
        self.golden("check-config", "check-config", "--vendor-policy-dir", vendor,
                    "--policy-dir", admin, "--policy", self.policy, expect=0)
        broken = os.path.join(self.tmp, "broken.json")
        with open(broken, "w") as f:
            f.write(BROKEN_POLICY)
        self.golden("check-config-broken", "check-config", "--vendor-policy-dir", vendor,
                    "--policy-dir", admin, "--policy", broken, expect=1)
        self.golden("check-config-broken.json", "--json", "check-config", "--vendor-policy-dir",
                    vendor, "--policy-dir", admin, "--policy", broken, expect=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iommud", required=True)
    ap.add_argument("--iommuctl", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--topology", required=True)
    ap.add_argument("--cdi-validator", required=True)
    ap.add_argument("--update", action="store_true")
    args = ap.parse_args()

    r = Runner(args)
    try:
        r.start()
        g = r.golden
        # Order matters: session ids grow with every connection.
        g("status", "status", expect=0)
        g("status.json", "--json", "status", expect=0)
        g("sessions", "sessions", expect=0, table_pid=True)
        g("sessions.json", "--json", "sessions", expect=0)
        g("devices", "devices", expect=0)
        g("devices-all", "devices", "--all", expect=0)
        g("devices.json", "devices", "--all", "--json", expect=0)
        g("groups", "groups", expect=0)
        g("groups.json", "--json", "groups", expect=0)

        devs = r.devices()
        eligible = [d["name"] for d in devs if d["eligible"]]
        refused = [d["name"] for d in devs if not d["eligible"] and d["cdev"]] + \
                  [d["name"] for d in devs if not d["eligible"] and not d["cdev"]]
        r.ok(devs, "the topology has devices")
        if eligible:
            g("explain-eligible", "explain", eligible[0], expect=0)
            g("explain-eligible.json", "--json", "explain", eligible[0], expect=0)
            g("attach", "attach", eligible[0], expect=0)
            g("map", "map", eligible[0], "--size", "64K", expect=0)
            g("map.json", "--json", "map", eligible[0], "--size", "2M", expect=0)
        if refused:
            g("explain-refused", "explain", refused[0], expect=3)
            g("attach-refused", "attach", refused[0], expect=3)
            g("explain-uid", "explain", refused[0], "--uid", "4242", expect=3)

        g("error-no-device", "explain", expect=2)
        g("error-unknown-device", "explain", "0000:ff:1f.7")
        g("error-unknown-verb", "frobnicate", expect=2)
        g("error-map-no-size", "map", "0000:00:00.0", expect=2)
        g("error-map-bad-size", "map", "0000:00:00.0", "--size", "lots", expect=2)
        g("error-unreachable", "--socket", os.path.join(r.tmp, "nothing"), "status", expect=4)

        g("reload", "reload", expect=0)
        with open(r.policy, "w") as f:
            f.write(BROKEN_POLICY)
        g("reload-broken", "reload", expect=1)
        with open(r.policy, "w") as f:
            f.write(POLICY)

        r.check_config()
        r.cdi()
        r.monitor()
    except Exception as e:  # report, do not hide, a broken harness
        r.ok(False, "harness: %s" % e)
    finally:
        r.stop()
    print("1..%d" % r.n)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
