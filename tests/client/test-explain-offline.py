#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""iommud --explain on a sysfs tree with a garbled file: the decision points to the
topology problems, and they are printed with it.  Usage: test-explain-offline.py IOMMUD"""

import os
import subprocess
import sys
import tempfile

DEV = "0000:07:00.0"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def build_tree(root):
    dev = os.path.join(root, "sys/devices/pci0000:00", DEV)
    for attr, value in (("vendor", "0x8086"), ("device", "0x1234"), ("class", "0x020000"),
                        ("subsystem_vendor", "0x8086"), ("subsystem_device", "0x0000")):
        write(os.path.join(dev, attr), value + "\n")
    group = os.path.join(root, "sys/kernel/iommu_groups/7")
    write(os.path.join(group, "type"), "DMA\n")
    write(os.path.join(group, "reserved_regions"), "garbage here\n")
    os.makedirs(os.path.join(group, "devices"))
    os.symlink("../../../../devices/pci0000:00/" + DEV, os.path.join(group, "devices", DEV))
    os.makedirs(os.path.join(root, "empty"))


def main():
    iommud = sys.argv[1]
    with tempfile.TemporaryDirectory() as root:
        build_tree(root)
        empty = os.path.join(root, "empty")
        out = subprocess.run([iommud, "--explain", DEV, "--sysfs-root", os.path.join(root, "sys"),
                              "--policy-dir", empty, "--vendor-policy-dir", empty,
                              "--policy", os.path.join(empty, "none.json")],
                             capture_output=True, text=True, timeout=60)
    checks = [
        ("the decision refuses", out.returncode == 1),
        ("the group step points to the topology problems", "see the topology problems" in out.stdout),
        ("the problems are printed", "Topology problems:\n" in out.stdout),
        ("the garbled line is named with its file and line",
         "  kernel/iommu_groups/7/reserved_regions:1: expected 3 fields" in out.stdout),
    ]
    print(f"1..{len(checks)}")
    for i, (what, ok) in enumerate(checks, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    if not all(ok for _, ok in checks):
        print("# stdout:\n" + "".join("# " + line + "\n" for line in out.stdout.splitlines()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
