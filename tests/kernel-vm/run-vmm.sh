#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The kernel-vm guest as a VMM host: boots it (run-vm.sh) with QEMU 10 from bookworm-backports
# inside, which guest-vmm.sh starts as an unprivileged uid with the guest's edu device passed
# through by iommufd into a nested guest running the same test kernel.
#
#   run-vmm.sh -m intel|amd -r INITRAMFS [-l LOGDIR] [-t TIMEOUT] [-n NAME]
#
# INITRAMFS is the one meson builds (init, guest-vmm.sh, iommud, iommuctl, the nested
# initramfs); this appends, at run time, an archive with what only exists once fetched or
# built: QEMU 10 with its libraries and firmware (fetch-qemu10.sh's cache) and the test kernel
# as the nested guest's kernel.
#
# Prints TAP on stdout like run-vm.sh; reports a TAP skip ("1..0 # SKIP", exit 0, as meson's
# TAP protocol counts exit 77 as an error) when QEMU 10 or the kernel has not been fetched or
# built (tools/kernel-vm does both).

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=
initramfs=
logdir=.
vm_timeout=${IOMMUD_KVM_TIMEOUT:-600}
name=

skip() {
        echo "run-vmm: SKIP: $*" >&2
        echo "1..0 # SKIP $*"
        exit 0
}
die() { echo "run-vmm: ERROR: $*" >&2; echo "Bail out! $*"; exit 1; }

while getopts "m:r:l:t:n:" opt; do
        case $opt in
        m) mode=$OPTARG ;;
        r) initramfs=$OPTARG ;;
        l) logdir=$OPTARG ;;
        t) vm_timeout=$OPTARG ;;
        n) name=$OPTARG ;;
        *) die "usage: $0 -m intel|amd -r INITRAMFS [-l LOGDIR] [-t TIMEOUT] [-n NAME]" ;;
        esac
done
[ -f "$initramfs" ] || die "initramfs '$initramfs' does not exist"
name=${name:-vmm-$mode}

kernel=${IOMMUD_KVM_KERNEL:-}
if [ -z "$kernel" ]; then
        kernel=$("$here/build-kernel.sh" --cached-only 2>/dev/null)
        case $? in
        0) ;;
        77) skip "no kernel image with iommufd: run tools/kernel-vm (or tests/kernel-vm/build-kernel.sh) first" ;;
        *) die "build-kernel.sh failed" ;;
        esac
fi
[ -f "$kernel" ] || die "kernel image '$kernel' does not exist"

qemu10=$("$here/fetch-qemu10.sh" --cached-only 2>/dev/null)
case $? in
0) ;;
77) skip "QEMU 10 from bookworm-backports has not been fetched: run tools/kernel-vm (or tests/kernel-vm/fetch-qemu10.sh) first" ;;
*) die "fetch-qemu10.sh failed" ;;
esac

mkdir -p "$logdir"
initrd=$(mktemp "$logdir/kernel-vm-$name.initrd.XXXXXX")
trap 'rm -f "$initrd" "$initrd.extra.cpio.gz"' EXIT

# What a q35 -nodefaults -kernel boot reads: SeaBIOS, the DMA-capable Linux loader ROM and the
# kvmvapic ROM (QEMU loads it with TCG too).  No VGA or network option ROMs.
start=$(date +%s.%N)
"$here/mkinitramfs.sh" -x -o "$initrd.extra.cpio.gz" \
        -f "$qemu10/usr/bin/qemu-system-x86_64:/usr/bin/qemu-system-x86_64" \
        -f "$qemu10/usr/share/seabios/bios-256k.bin:/usr/share/seabios/bios-256k.bin" \
        -f "$qemu10/usr/share/qemu/linuxboot_dma.bin:/usr/share/qemu/linuxboot_dma.bin" \
        -f "$qemu10/usr/share/qemu/kvmvapic.bin:/usr/share/qemu/kvmvapic.bin" \
        -f "$kernel:/usr/share/iommud-vmm/bzImage" 2>/dev/null ||
        die "cannot build the QEMU 10 archive from $qemu10"
cat "$initramfs" "$initrd.extra.cpio.gz" >"$initrd"
echo "# $mode: initramfs $(( $(stat -c %s "$initrd") / 1024 )) KiB" \
     "(QEMU 10 part $(( $(stat -c %s "$initrd.extra.cpio.gz") / 1024 )) KiB)," \
     "built in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

# guest-vmm is the guest's only program: it gets the VM's time but for a minute to boot and
# report (run-vm.sh gives each program half of it; the later iommud.timeout= wins).
"$here/run-vm.sh" -m "$mode" -r "$initrd" -k "$kernel" -l "$logdir" -t "$vm_timeout" -T \
        -M 2G -s guest-vmm -n "$name" -a "iommud.timeout=$((vm_timeout - 60))"
