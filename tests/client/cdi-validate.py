#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A validator for Container Device Interface specs of cdiVersion 0.5.0,
written from the CDI specification: required fields, the syntax of kind and
device names, absolute paths, and no member the 0.5.0 schema does not define.

usage: cdi-validate.py SPEC.json...      exit status 0 when every spec is valid
"""

import json
import re
import sys

ALNUM = r"[A-Za-z0-9]"
# vendor: starts with a letter, ends alphanumeric, '_' '-' '.' between;
# class (0.5.0: no dots): starts with a letter, ends alphanumeric, '_' '-' between.
VENDOR = re.compile(r"^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
CLASS = re.compile(r"^[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?$")
# device names may start with a digit (0.5.0) and contain ':' and '.'.
DEVICE = re.compile(r"^%s([A-Za-z0-9_.:-]*%s)?$" % (ALNUM, ALNUM))
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

SPEC_KEYS = {"cdiVersion": True, "kind": True, "devices": True, "containerEdits": False}
DEVICE_KEYS = {"name": True, "containerEdits": True}
EDITS_KEYS = {"env": False, "deviceNodes": False, "hooks": False, "mounts": False}
NODE_KEYS = {"path": True, "hostPath": False, "type": False, "major": False, "minor": False,
             "fileMode": False, "permissions": False, "uid": False, "gid": False}
MOUNT_KEYS = {"hostPath": True, "containerPath": True, "options": False, "type": False}
HOOK_KEYS = {"hookName": True, "path": True, "args": False, "env": False, "timeout": False}
HOOK_NAMES = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"}


class Checker:
    def __init__(self):
        self.errors = []

    def fail(self, where, msg):
        self.errors.append("%s: %s" % (where, msg))

    def keys(self, obj, where, allowed):
        if not isinstance(obj, dict):
            self.fail(where, "expected an object")
            return False
        for k in obj:
            if k not in allowed:
                self.fail(where, "unknown member '%s'" % k)
        for k, required in allowed.items():
            if required and k not in obj:
                self.fail(where, "missing required member '%s'" % k)
        return True

    def string(self, obj, key, where):
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            self.fail("%s.%s" % (where, key), "expected a string")
            return None
        return v

    def strings(self, obj, key, where):
        v = obj.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            self.fail("%s.%s" % (where, key), "expected an array of strings")
            return []
        return v

    def abspath(self, obj, key, where):
        v = self.string(obj, key, where)
        if v is not None and not v.startswith("/"):
            self.fail("%s.%s" % (where, key), "'%s' is not an absolute path" % v)

    def edits(self, e, where):
        if not self.keys(e, where, EDITS_KEYS):
            return
        for i, s in enumerate(self.strings(e, "env", where)):
            if not ENV.match(s):
                self.fail("%s.env[%d]" % (where, i), "'%s' is not NAME=value" % s)
        for key, allowed, check in (("deviceNodes", NODE_KEYS, self.node),
                                    ("mounts", MOUNT_KEYS, self.mount),
                                    ("hooks", HOOK_KEYS, self.hook)):
            items = e.get(key, [])
            if not isinstance(items, list):
                self.fail("%s.%s" % (where, key), "expected an array")
                continue
            for i, item in enumerate(items):
                w = "%s.%s[%d]" % (where, key, i)
                if self.keys(item, w, allowed):
                    check(item, w)

    def node(self, n, where):
        self.abspath(n, "path", where)
        self.abspath(n, "hostPath", where)
        t = self.string(n, "type", where)
        if t is not None and t not in ("b", "c", "u", "p"):
            self.fail(where + ".type", "'%s' is not one of b, c, u, p" % t)
        p = self.string(n, "permissions", where)
        if p is not None and (not p or set(p) - set("rwm")):
            self.fail(where + ".permissions", "'%s' is not made of r, w, m" % p)
        for k in ("major", "minor", "fileMode", "uid", "gid"):
            if k in n and (not isinstance(n[k], int) or isinstance(n[k], bool) or n[k] < 0):
                self.fail("%s.%s" % (where, k), "expected a non-negative integer")

    def mount(self, m, where):
        self.abspath(m, "hostPath", where)
        self.abspath(m, "containerPath", where)
        self.strings(m, "options", where)
        self.string(m, "type", where)

    def hook(self, h, where):
        if self.string(h, "hookName", where) not in HOOK_NAMES:
            self.fail(where + ".hookName", "not an OCI hook name")
        self.abspath(h, "path", where)

    def spec(self, s):
        if not self.keys(s, "spec", SPEC_KEYS):
            return
        if s.get("cdiVersion") != "0.5.0":
            self.fail("cdiVersion", "expected \"0.5.0\", got %r" % s.get("cdiVersion"))
        kind = self.string(s, "kind", "spec") or ""
        vendor, _, cls = kind.partition("/")
        if not VENDOR.match(vendor) or not CLASS.match(cls) or "/" in cls:
            self.fail("kind", "'%s' is not VENDOR/CLASS" % kind)
        devices = s.get("devices")
        if not isinstance(devices, list) or not devices:
            self.fail("devices", "a spec needs at least one device")
            devices = []
        names = set()
        for i, d in enumerate(devices):
            w = "devices[%d]" % i
            if not self.keys(d, w, DEVICE_KEYS):
                continue
            name = self.string(d, "name", w) or ""
            if not DEVICE.match(name):
                self.fail(w + ".name", "'%s' is not a valid CDI device name" % name)
            if name in names:
                self.fail(w + ".name", "duplicate device name '%s'" % name)
            names.add(name)
            if "containerEdits" in d:
                self.edits(d["containerEdits"], w + ".containerEdits")
                if not any(d["containerEdits"].get(k) for k in EDITS_KEYS):
                    self.fail(w + ".containerEdits", "a device needs at least one edit")
        if "containerEdits" in s:
            self.edits(s["containerEdits"], "containerEdits")


def main():
    ok = True
    for path in sys.argv[1:]:
        c = Checker()
        try:
            c.spec(json.load(open(path)))
        except ValueError as e:
            c.fail(path, "not JSON: %s" % e)
        for e in c.errors:
            print("%s: %s" % (path, e))
        ok = ok and not c.errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
