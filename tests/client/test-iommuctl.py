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
import ctypes
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
import threading
import time

PR_SET_PDEATHSIG = 1


def parents(path):
    """Every directory above path, outermost first."""
    d = os.path.dirname(os.path.abspath(path))
    found = []
    while True:
        found.insert(0, d)
        if d == "/":
            return found
        d = os.path.dirname(d)


def die_with_test():
    """preexec_fn of every child: SIGKILL when this test dies, so none outlives a failure."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

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


WINDOWS_POLICY = """{
  "rules": { "all": { "action": "allow", "match": "*" } },
  "grants": { "self": { "principals": [ { "user": %d } ], "devices": "*",
      "iova-windows": [ %s ] } }
}
"""


class Varlink:
    """A minimal Varlink client: one call at a time, NUL-delimited JSON."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, method, params=None, more=False):
        msg = {"method": method, "parameters": params or {}}
        if more:
            msg["more"] = True
        self.s.sendall(json.dumps(msg).encode() + b"\0")

    def recv(self, timeout=30):
        self.s.settimeout(timeout)
        while b"\0" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("iommud closed the connection")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None):
        self.send(method, params)
        return self.recv()

    def close(self):
        self.s.close()


class Monitor:
    """`iommuctl --json monitor` and the events it printed so far."""

    def __init__(self, iommuctl, env):
        self.p = subprocess.Popen([iommuctl, "--json", "monitor"], preexec_fn=die_with_test,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.events = []
        self.pending = b""

    def read_until(self, pred, poke=None):
        """Waits for an event matching pred; poke() re-triggers while the stream may not
        be registered yet.  Bounded so a bug cannot hang.  Reads the raw fd: a buffered
        reader would hide lines from select()."""
        fd = self.p.stdout.fileno()
        for _ in range(200):
            if poke:
                poke()
            r, _, _ = select.select([fd], [], [], 0.1)
            while r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False
                self.pending += chunk
                *lines, self.pending = self.pending.split(b"\n")
                for line in lines:
                    self.events.append(json.loads(line))
                    if pred(self.events[-1]):
                        return True
                r, _, _ = select.select([fd], [], [], 0)
        return False

    def stop(self):
        self.p.terminate()
        self.p.wait()


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
             "--policy-dir", os.path.join(self.tmp, "policy.d"), "--policy", self.policy,
             "--cdi-dir", os.path.join(self.tmp, "claims")],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=die_with_test)
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
        # Under valgrind ("--PID-- " lines: a system call it does not know, which iommuctl
        # then falls back from) the stderr is still iommuctl's own; its errors ("==PID==")
        # stay and fail the comparison, as does the exit status they set.
        err = re.sub(r"(?m)^--\d+-- .*\n", "", p.stderr)
        return p.returncode, p.stdout, err

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

    def skip(self, what, reason):
        """A TAP skip directive: meson counts it as skipped, CI checks it is allowed."""
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, what, reason))

    def devices(self):
        """Every device iommud reports, or None (and a failure) when iommuctl cannot say."""
        rc, out, err = self.ctl("--json", "devices", "--all")
        try:
            devs = json.loads(out)["devices"] if rc == 0 else None
        except (ValueError, KeyError) as e:
            devs, err = None, "%s\n%s" % (e, out)
        if devs is None:
            self.ok(False, "iommuctl --json devices --all answers (exit %d)" % rc, err)
        return devs

    def varlink(self):
        return Varlink(self.socket)

    def monitor_start(self):
        """An `iommuctl --json monitor` process and a reader of its events."""
        return Monitor(self.args.iommuctl, self.env)

    def monitor(self):
        """monitor sees a policy reload, then a session open and close."""
        mon = self.monitor_start()
        events = mon.events
        try:
            seen_reload = mon.read_until(lambda e: e["type"] == "policy-reloaded",
                                         lambda: self.ctl("reload"))
            self.ok(seen_reload, "monitor: sees policy-reloaded",
                    json.dumps(events, indent=1))
            events.clear()
            rc, _, _ = self.ctl("status")

            def opened_and_closed(_):
                opened = [e["session"] for e in events if e["type"] == "session-opened"]
                return any(e["type"] == "session-closed" and e["session"] in opened
                           for e in events)

            seen = mon.read_until(opened_and_closed) if rc == 0 else False
            opened = [e for e in events if e["type"] == "session-opened"]
            self.ok(seen and opened[0]["uid"] == UID and opened[0]["message"],
                    "monitor: sees the session of another client open and close",
                    json.dumps(events, indent=1))
        finally:
            mon.stop()
        p2 = subprocess.run([self.args.iommuctl, "monitor", "--count", "x"], capture_output=True,
                            env=self.env)
        self.ok(p2.returncode == 2, "monitor --count x is a usage error")

    def hotplug(self):
        """monitor sees simulated hotplug: a driver change, a removal, and the holder's loss."""
        devs = self.devices()
        if devs is None:
            return
        held = [d["name"] for d in devs if d["eligible"]]
        others = [d["name"] for d in devs if d["name"] not in held[:1] and d.get("driver")]
        if not held or not others:
            self.skip("hotplug", "the %s topology has no eligible device and another bound one"
                      % self.args.topology)
            return
        holder = self.varlink()
        sim = self.varlink()
        mon = self.monitor_start()
        events = mon.events
        try:
            r = holder.call("org.iommud.Broker.AttachDevice", {"device": held[0]})
            self.ok("error" not in r, "hotplug: a client holds %s" % held[0], json.dumps(r))
            # The stream may not be registered when the first reload runs: poke until it is.
            mon.read_until(lambda e: e["type"] == "policy-reloaded", lambda: self.ctl("reload"))
            events.clear()

            dev = others[0]
            old = [d for d in devs if d["name"] == dev][0]["driver"]
            r = sim.call("org.iommud.Simulator.SetDriver", {"device": dev, "driver": "pci-stub"})
            self.ok("error" not in r, "hotplug: SetDriver %s pci-stub" % dev, json.dumps(r))
            seen = mon.read_until(lambda e: e["type"] == "device-changed" and e["device"] == dev)
            ev = events[-1] if seen else {}
            self.ok(seen and ev.get("driver") == "pci-stub" and ev.get("previousDriver") == old
                    and ev.get("message"),
                    "hotplug: monitor sees device-changed %s %s -> pci-stub" % (dev, old),
                    json.dumps(events, indent=1))

            events.clear()
            r = sim.call("org.iommud.Simulator.RemoveDevice", {"device": held[0]})
            self.ok("error" not in r, "hotplug: RemoveDevice %s" % held[0], json.dumps(r))
            seen = mon.read_until(lambda e: e["type"] == "device-removed"
                                  and e["device"] == held[0])
            lost = [e for e in events if e["type"] == "device-lost"]
            asked = [i for i, e in enumerate(events) if e["type"] == "device-release-requested"]
            self.ok(seen, "hotplug: monitor sees device-removed %s" % held[0],
                    json.dumps(events, indent=1))
            # The holder is asked first, and loses the device when the grace period ends.
            self.ok(len(asked) == 1 and events[asked[0]]["device"] == held[0]
                    and events[asked[0]]["deadline"] > 0
                    and events.index(lost[0] if lost else None) > asked[0],
                    "hotplug: monitor sees the holder asked for %s first" % held[0],
                    json.dumps(events, indent=1))
            self.ok(len(lost) == 1 and lost[0]["device"] == held[0]
                    and lost[0]["kind"] == "released" and lost[0]["uid"] == UID
                    and lost[0]["session"] > 0,
                    "hotplug: monitor sees the holder's device-lost before device-removed",
                    json.dumps(events, indent=1))

            events.clear()
            r = sim.call("org.iommud.Simulator.AddDevice", {"device": held[0]})
            self.ok("error" not in r, "hotplug: AddDevice %s" % held[0], json.dumps(r))
            seen = mon.read_until(lambda e: e["type"] == "device-added" and e["device"] == held[0])
            self.ok(seen and events[-1].get("driver") and events[-1].get("message"),
                    "hotplug: monitor sees device-added %s" % held[0],
                    json.dumps(events, indent=1))
            r = sim.call("org.iommud.Simulator.AddDevice", {"device": held[0]})
            self.ok(r.get("error") == "org.iommud.Simulator.DevicePresent",
                    "hotplug: AddDevice of a present device is DevicePresent", json.dumps(r))
        finally:
            mon.stop()
            holder.close()
            sim.close()
        # The text form prints the type and the sentence.
        # Each reload is session-opened, policy-reloaded, session-closed: any 3 in a row
        # hold a policy-reloaded.
        p = subprocess.Popen([self.args.iommuctl, "monitor", "--count", "3"],
                             preexec_fn=die_with_test,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                             text=True)
        try:
            for _ in range(100):
                self.ctl("reload")
                try:
                    out, _ = p.communicate(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                out = ""
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.ok(re.search(r"(?m)^policy-reloaded +policy reloaded \(generation \d+\)$", out),
                "monitor: text output names the type and says what happened", out)

    def faults(self):
        """monitor sees a fault delivered to a watch, then answered by iommud when the watch
        goes away."""
        devs = self.devices()
        if devs is None:
            return
        client = self.varlink()
        dev = pasid = None
        refusals = []  # why each eligible device was not usable for this
        for d in [d for d in devs if d["eligible"]]:
            r = client.call("org.iommud.Broker.AttachDevice", {"device": d["name"]})
            if "error" in r:
                refusals.append((d["name"], "AttachDevice", r))
                continue
            dev_id = r["parameters"]["deviceId"]
            if r["parameters"].get("pasidBits", 0) > 0:
                ioas = client.call("org.iommud.Broker.CreateAddressSpace")["parameters"]["ioasId"]
                r = client.call("org.iommud.Broker.BindPASID",
                                {"deviceId": dev_id, "ioasId": ioas, "faults": True})
                if "error" not in r:
                    dev, pasid = d["name"], r["parameters"]["pasid"]
                    break
                # Only an IOMMU without fault queues may refuse, and it says NotSupported.
                if r["error"] != "org.iommud.Broker.NotSupported":
                    refusals.append((d["name"], "BindPASID", r))
            client.call("org.iommud.Broker.DetachDevice", {"deviceId": dev_id})
        if dev is None:
            client.close()
            if refusals:
                self.ok(False, "faults: every eligible device is usable for a PASID bind",
                        "\n".join("%s: %s: %s" % (n, m, json.dumps(r)) for n, m, r in refusals))
            else:
                self.skip("faults", "no eligible device of the %s topology has a PASID and an "
                          "IOMMU with fault queues" % self.args.topology)
            return
        sim = self.varlink()
        watcher = None
        mon = self.monitor_start()
        events = mon.events
        try:
            mon.read_until(lambda e: e["type"] == "policy-reloaded", lambda: self.ctl("reload"))
            events.clear()
            r = sim.call("org.iommud.Simulator.InjectFault",
                         {"device": dev, "pasid": pasid, "address": 0x4000, "read": True})
            self.ok("error" not in r, "faults: InjectFault %s pasid %d" % (dev, pasid),
                    json.dumps(r))
            token = client.call("org.iommud.Broker.GetSession")["parameters"]["token"]
            watcher = self.varlink()
            watcher.call("org.iommud.Broker.JoinSession", {"token": token})
            watcher.send("org.iommud.Broker.WatchFaults", {}, more=True)

            def fault(outcome):
                return lambda e: e["type"] == "fault" and e.get("outcome") == outcome

            seen = mon.read_until(fault("delivered"))
            ev = events[-1] if seen else {}
            self.ok(seen and ev.get("device") == dev and ev.get("pasid") == pasid
                    and ev.get("address") == 0x4000 and ev.get("uid") == UID
                    and ev.get("session", 0) > 0 and "0x4000" in ev.get("message", ""),
                    "faults: monitor sees the fault delivered (device, pasid, address)",
                    json.dumps(events, indent=1))
            # The watch ends with the fault unanswered: iommud answers it and says so.
            watcher.close()
            watcher = None
            seen = mon.read_until(fault("disconnected"))
            ev = events[-1] if seen else {}
            self.ok(seen and ev.get("device") == dev and ev.get("address") == 0x4000,
                    "faults: monitor sees iommud answer it when the watch goes away",
                    json.dumps(events, indent=1))
        finally:
            mon.stop()
            if watcher:
                watcher.close()
            sim.close()
            client.close()

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
        self.golden("cdi-stdout", "cdi", "generate", "--stdout", "--mode", "iommufd")
        self.cdi_modes()
        # A user who cannot write the directory is told the way out.
        if os.geteuid() != 0 or not os.path.exists(path):
            self.skip("cdi: the advice to a user who cannot write", "needs root and a spec")
            return
        unreachable = [d for d in parents(self.args.iommuctl) if not os.stat(d).st_mode & 0o001]
        if unreachable:
            self.skip("cdi: the advice to a user who cannot write",
                      "nobody cannot reach iommuctl: %s is not searchable by others"
                      % unreachable[0])
            return
        if os.environ.get("IOMMUD_VALGRIND"):
            # valgrind, traced into a child that drops to nobody, cannot make its own files
            # there and iommuctl never runs; the plain and ASan runs check the advice.
            self.skip("cdi: the advice to a user who cannot write",
                      "under valgrind a child that becomes nobody does not run")
            return
        os.chmod(self.tmp, 0o755)

        def as_nobody():
            die_with_test()
            os.setgid(65534)
            os.setgroups([])
            os.setuid(65534)

        p = subprocess.run([self.args.iommuctl, "cdi", "generate", "--output", outdir],
                           capture_output=True, text=True, env=self.env, preexec_fn=as_nobody)
        self.ok(p.returncode == 1 and "--output DIR" in p.stderr and "--stdout" in p.stderr,
                "cdi: a user who cannot write the spec is told to use --output or --stdout",
                p.stderr)

    def claims(self):
        """claim prepare holds a device and writes a valid spec; a retry changes nothing, a
        session gets DeviceBusy naming the claim, unprepare releases it and removes the spec."""
        eligible = [d for d in self.devices() or [] if d["eligible"] and d["cdev"]]
        if not eligible:
            self.skip("claim: prepare, busy, unprepare", "no eligible device with a cdev")
            return
        dev = eligible[0]["name"]
        path = os.path.join(self.tmp, "claims", "iommud-claim-pod-1.json")
        rc, out, err = self.ctl("claim", "prepare", "pod-1", "--device", dev, "--uid", str(UID))
        self.ok(rc == 0 and out.startswith("Prepared claim pod-1 for uid %d: %s." % (UID, dev))
                and "--device iommud.org/claim=pod-1" in out, "claim prepare", out + err)
        v = subprocess.run([sys.executable, self.args.cdi_validator, path],
                           capture_output=True, text=True)
        self.ok(v.returncode == 0, "claim: the spec is valid CDI 0.5.0", v.stdout + v.stderr)
        self.ok(os.path.exists(path) and oct(os.stat(path).st_mode & 0o777) == oct(0o644),
                "claim: the spec is 0644")
        rc, out, err = self.ctl("--json", "claim", "prepare", "pod-1", "--device", dev,
                                "--uid", str(UID))
        self.ok(rc == 0 and json.loads(out)["prepared"] is False,
                "claim prepare again: already prepared", out + err)
        rc, out, err = self.ctl("--json", "claim", "list")
        claims = json.loads(out)["claims"] if rc == 0 else []
        self.ok([c["claimId"] for c in claims] == ["pod-1"] and claims[0]["devices"] == [dev]
                and claims[0]["spec"] == path and claims[0]["unit"] is None,
                "claim list", out + err)
        rc, out, err = self.ctl("devices")
        self.ok(re.search(r"(?m)^%s .*claim pod-1 \(uid %d\)$" % (re.escape(dev), UID), out),
                "devices: held by the claim", out)
        rc, _, err = self.ctl("attach", dev)
        self.ok(rc == 1 and "held by claim pod-1" in err, "claim: busy to a session", err)
        rc, _, err = self.ctl("claim", "prepare", "pod-2", "--device", dev, "--uid", str(UID))
        self.ok(rc == 1 and "held by claim pod-1" in err, "claim: busy to another claim", err)
        rc, _, err = self.ctl("claim", "prepare", "pod/2", "--device", dev, "--uid", str(UID))
        self.ok(rc == 1 and "'pod/2' is not a claim id" in err, "claim: a bad id", err)
        rc, _, err = self.ctl("claim", "prepare", "pod-2", "--uid", str(UID))
        self.ok(rc == 2, "claim prepare without a device is a usage error", err)
        rc, out, err = self.ctl("claim", "unprepare", "pod-1")
        self.ok(rc == 0 and "Released claim pod-1" in out and not os.path.exists(path),
                "claim unprepare removes the spec", out + err)
        rc, out, err = self.ctl("claim", "unprepare", "pod-1")
        self.ok(rc == 0 and "was not prepared" in out, "claim unprepare again", out + err)

    def cdi_modes(self):
        """Each mode gives a valid spec with what reaches the devices in that mode only."""
        want = {  # mode: (common nodes, per-device node prefix, socket mounted)
            "iommufd": (["/dev/iommu"], "/dev/vfio/devices/vfio", False),
            "legacy": (["/dev/vfio/vfio"], "/dev/vfio/", False),
            "broker": ([], None, True),
        }
        for mode, (common, prefix, socket) in want.items():
            rc, out, err = self.ctl("cdi", "generate", "--stdout", "--mode", mode)
            if rc != 0 or not out.strip():
                self.ok(rc == 0 and "No device" in err, "cdi %s: nothing eligible" % mode, err)
                continue
            spec = json.loads(out)
            path = os.path.join(self.tmp, "cdi-%s.json" % mode)
            with open(path, "w") as f:
                f.write(out)
            v = subprocess.run([sys.executable, self.args.cdi_validator, path],
                               capture_output=True, text=True)
            self.ok(v.returncode == 0, "cdi %s: the spec is valid CDI 0.5.0" % mode,
                    v.stdout + v.stderr)
            edits = spec.get("containerEdits", {})
            nodes = [n["path"] for n in edits.get("deviceNodes", [])]
            env = edits.get("env", [])
            self.ok(nodes == common, "cdi %s: common device nodes %s" % (mode, nodes))
            self.ok(bool(edits.get("mounts")) == socket and
                    any(e.startswith("IOMMUD_SOCKET=") for e in env) == socket,
                    "cdi %s: the broker socket is %s" % (mode, "mounted" if socket else "not"))
            for d in spec["devices"]:
                dn = [n["path"] for n in d["containerEdits"].get("deviceNodes", [])]
                var = "IOMMUD_DEVICE_%s=%s" % (re.sub(r"[^A-Za-z0-9]", "_", d["name"]),
                                               d["name"])
                self.ok(d["containerEdits"].get("env") == [var] and
                        (dn == [] if prefix is None else
                         len(dn) == 1 and dn[0].startswith(prefix)),
                        "cdi %s: %s gets %s and %s" % (mode, d["name"], var, dn or "no node"))
        rc, _, err = self.ctl("cdi", "generate", "--stdout", "--mode", "nodes")
        self.ok(rc == 2 and "--mode takes auto, iommufd, legacy or broker, not 'nodes'" in err,
                "cdi: an unknown mode is a usage error (exit %d)" % rc, err)

    def exec_verb(self):
        """exec: the command sees the fds at fixed numbers and the placeholders replaced, the
        devices are claimed while it runs and free once it exits, signals reach it, and
        iommuctl exits with its status."""
        devs = self.devices()
        if devs is None:
            return
        eligible = [d for d in devs if d["eligible"] and d.get("cdev")]
        if not eligible:
            self.skip("exec", "the %s topology has no eligible device with a cdev"
                      % self.args.topology)
            return
        dev = eligible[0]
        probe = os.path.join(self.tmp, "exec-probe.json")
        # The child reports what it got, and asks iommud who holds the device meanwhile.
        child = [sys.executable, "-c", """
import json, os, subprocess, sys
fds = {n: os.readlink("/proc/self/fd/%d" % n) for n in (3, 4)}
cloexec = [bool(__import__("fcntl").fcntl(n, 1) & 1) for n in (3, 4)]
devs = json.loads(subprocess.run([sys.argv[1], "--json", "devices", "--all"],
                                 capture_output=True, text=True).stdout)["devices"]
json.dump({"argv": sys.argv[2:], "fds": fds, "cloexec": cloexec,
           "held": [d.get("heldBy") for d in devs if d["name"] == sys.argv[4]][0]},
          open(sys.argv[5], "w"))
sys.exit(7)
""", self.args.iommuctl, "fd={iommufd}", "vfio-pci,fd={device:%s}" % dev["name"], dev["name"],
                 probe]
        rc, out, err = self.ctl("exec", "--device", dev["name"], "--", *child)
        got = json.load(open(probe)) if os.path.exists(probe) else {}
        self.ok(rc == 7, "exec: exits with the command's status (%d)" % rc, err)
        self.ok(got.get("argv", [None])[:2] == ["fd=3", "vfio-pci,fd=4"],
                "exec: {iommufd} and {device:%s} become 3 and 4" % dev["name"], json.dumps(got))
        fds = got.get("fds", {})
        self.ok(fds.get("3") == "/memfd:iommufd-sim (deleted)" and
                fds.get("4", "").endswith("/vfio/devices/" + dev["cdev"])
                and got.get("cloexec") == [False, False],
                "exec: the iommufd at fd 3 and the device's cdev at fd 4, inherited",
                json.dumps(got))
        self.ok(got.get("held", "").startswith("uid %d " % UID),
                "exec: the device is held while the command runs", json.dumps(got))
        # iommud sees the connection end in its own time: ask until it did (bounded).
        for _ in range(100):
            after = [d for d in (self.devices() or []) if d["name"] == dev["name"]]
            if after and not after[0].get("heldBy"):
                break
            time.sleep(0.02)
        self.ok(after and not after[0].get("heldBy"), "exec: the claim ends with the command",
                json.dumps(after))
        self.exec_signals_and_refusals(dev)

    def exec_signals_and_refusals(self, dev):
        """A signal sent to iommuctl reaches the command; a second exec of the device while
        the first runs is DeviceBusy; misused placeholders and options are usage errors."""
        ready = os.path.join(self.tmp, "exec-ready")
        child = [sys.executable, "-c", """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
open(sys.argv[1], "w").close()
time.sleep(60)
sys.exit(1)
""", ready]
        p = subprocess.Popen([self.args.iommuctl, "exec", "--device", dev["name"], "--"] + child,
                             env=self.env, preexec_fn=die_with_test, stderr=subprocess.PIPE,
                             text=True)
        for _ in range(600):
            if os.path.exists(ready) or p.poll() is not None:
                break
            time.sleep(0.05)
        rc, _, err = self.ctl("exec", "--device", dev["name"], "--", "true")
        self.ok(rc == 1 and "held by uid %d" % UID in err,
                "exec: a second exec of the device is refused as busy", err)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        self.ok(rc == 42, "exec: SIGTERM to iommuctl reaches the command (exit %d)" % rc)
        for argv, what in ((["--device", dev["name"], "--", "echo", "{device:0000:ff:1f.7}"],
                            "a placeholder for a device not given"),
                           (["--device", dev["name"], "true"], "a command without --"),
                           (["--", "true"], "no --device")):
            rc, _, err = self.ctl("exec", *argv)
            self.ok(rc == 2, "exec: %s is a usage error (exit %d)" % (what, rc), err)

    def foreign_sockets(self):
        """A socket that never answers, or answers something else, is not iommud: exit 4."""
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(os.path.join(self.tmp, "silent"))
        silent.listen(4)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(os.path.join(self.tmp, "other"))
        other.listen(4)
        stop = threading.Event()

        def answer_http():
            other.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = other.accept()
                except socket.timeout:
                    continue
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n\0")
                c.close()

        t = threading.Thread(target=answer_http)
        t.start()
        try:
            rc, _, err = self.ctl("--socket", os.path.join(self.tmp, "silent"), "--timeout",
                                  "0.3", "status")
            self.ok(rc == 4 and "did not answer" in err and "--timeout" in err,
                    "a socket that accepts and never answers: exit 4 after --timeout", err)
            rc, _, err = self.ctl("--socket", os.path.join(self.tmp, "other"), "status")
            self.ok(rc == 4 and "other is not iommud" in err,
                    "a socket that answers something else: exit 4, not iommud", err)
            rc, _, err = self.ctl("--timeout", "soon", "status")
            self.ok(rc == 2, "--timeout soon is a usage error", err)
        finally:
            stop.set()
            t.join()
            silent.close()
            other.close()

    def people_and_pipes(self):
        """ASCII marks outside a UTF-8 locale; whole lines into a pipe, cut only for a width."""
        refused = [d["name"] for d in self.devices() or [] if not d["eligible"]]
        if refused:
            env = dict(self.env, LANG="C")
            p = subprocess.run([self.args.iommuctl, "explain", refused[0]], capture_output=True,
                               text=True, env=env)
            self.ok("✓" not in p.stdout and "✗" not in p.stdout and
                    re.search(r"(?m)^  x \w+ ", p.stdout),
                    "explain under LANG=C marks steps in ASCII", p.stdout)
        rc, out, _ = self.ctl("groups")
        self.ok(rc == 0 and "…" not in out and "\033[" not in out,
                "groups into a pipe: no colour, no line cut", out)
        env = dict(self.env, COLUMNS="40")
        p = subprocess.run([self.args.iommuctl, "groups"], capture_output=True, text=True,
                           env=env)
        self.ok(p.returncode == 0 and "…" in p.stdout,
                "groups with COLUMNS=40 shortens the flexible column", p.stdout)

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
        self.check_windows(vendor, admin)

    def check_windows(self, vendor, admin):
        """iommud --check-config refuses an IOVA window over the host's reserved regions."""
        def check(windows):
            path = os.path.join(self.tmp, "windows.json")
            with open(path, "w") as f:
                f.write(WINDOWS_POLICY % (UID, windows))
            p = subprocess.run([self.args.iommud, "--check-config", "--sim", self.args.topology,
                                "--vendor-policy-dir", vendor, "--policy-dir", admin,
                                "--policy", path], capture_output=True, text=True, env=self.env)
            return p.returncode, p.stderr, path
        # 0-4G covers the MSI window of x86 (0xfee00000) and of the arm host (0x8000000).
        rc, err, path = check('{ "start": 0, "last": "0xffffffff" }')
        want = "%s:4:25: grants.self.iova-windows[0]: IOVA window 0x0-0xffffffff" % path
        self.ok(rc == 1 and want in err and "overlaps the msi region" in err,
                "check-config: a window over the MSI window is refused at file:line:column", err)
        rc, err, _ = check('{ "start": "0x10000000", "last": "0xfedfffff" }')
        self.ok(rc == 0, "check-config: a window around the reserved regions is fine", err)


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

        devs = r.devices() or []
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
            g("features", "features", expect=0)
            g("features-device.json", "--json", "features", eligible[0], expect=0)
            if re.match(r"0000:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$", eligible[0]):
                # lspci's short form names the same device.
                rc, out, err = r.ctl("explain", eligible[0][5:])
                r.ok(rc == 0 and out.startswith(eligible[0] + " is usable"),
                     "explain takes lspci's short form", out + err)
        if refused:
            g("explain-refused", "explain", refused[0], expect=3)
            g("attach-refused", "attach", refused[0], expect=3)
            # nobody as the account database has it; a uid without an account is an error.
            g("explain-uid", "explain", refused[0], "--uid", "65534", expect=3)
            g("explain-uid-unknown", "explain", refused[0], "--uid", "4000000000", expect=1)

        g("error-no-device", "explain", expect=2)
        g("error-unknown-device", "explain", "0000:ff:1f.7")
        g("error-unknown-verb", "frobnicate", expect=2)
        g("error-map-no-size", "map", "0000:00:00.0", expect=2)
        g("error-map-bad-size", "map", "0000:00:00.0", "--size", "lots", expect=2)
        g("error-map-partial-page", "map", "0000:00:00.0", "--size", "3", expect=2)
        g("error-bad-device", "explain", "1:0.0", expect=2)
        g("error-bad-option", "status", "--bogus", expect=2)
        g("error-unreachable", "--socket", os.path.join(r.tmp, "nothing"), "status", expect=4)

        g("reload", "reload", expect=0)
        with open(r.policy, "w") as f:
            f.write(BROKEN_POLICY)
        g("reload-broken", "reload", expect=1)
        g("reload-broken.json", "--json", "reload", expect=1)
        with open(r.policy, "w") as f:
            f.write(POLICY)

        r.check_config()
        r.foreign_sockets()
        r.people_and_pipes()
        r.cdi()
        r.claims()
        r.exec_verb()
        r.monitor()
        r.faults()
        r.hotplug()
    except Exception as e:  # report, do not hide, a broken harness
        r.ok(False, "harness: %s" % e)
    finally:
        r.stop()
    print("1..%d" % r.n)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
