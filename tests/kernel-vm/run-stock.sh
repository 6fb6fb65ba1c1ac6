#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Boots Debian's own stock kernel (stock-kernel.sh: 6.1 cloud, no iommufd) in the kernel-vm
# machine with the Intel IOMMU, its VFIO modules appended to the guest's initramfs, and
# re-emits the guest's results as numbered TAP (run-vm.sh does the booting and the verdicts).
#
#   run-stock.sh -r INITRAMFS [-l LOGDIR] [-t TIMEOUT] [-s TESTS] [-n NAME]
#
# The kernel is fetched with apt-get download when IOMMUD_KVM_FETCH=1 (tools/kernel-vm sets
# it), else taken from the cache; without it the run is a TAP skip.  The modules go in as a
# second cpio archive after the first (the kernel unpacks concatenated archives in order):
# /lib/modules/iommud/*.ko and their insmod order, which the guest init loads.  The guest is
# told with iommud.api=group that VFIO devices are reached through group files here.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
initramfs=
args=()
name=stock

skip() {
        echo "run-stock: SKIP: $*" >&2
        echo "1..0 # SKIP $*"
        exit 0
}

while getopts "r:l:t:s:n:" opt; do
        case $opt in
        r) initramfs=$OPTARG ;;
        n) name=$OPTARG ;;
        l|t|s) args+=("-$opt" "$OPTARG") ;;
        *) echo "usage: $0 -r INITRAMFS [-l LOGDIR] [-t TIMEOUT] [-s TESTS] [-n NAME]" >&2; exit 1 ;;
        esac
done
[ -f "$initramfs" ] || { echo "Bail out! initramfs '$initramfs' does not exist"; exit 1; }

if [ "${IOMMUD_KVM_FETCH:-0}" = 1 ]; then
        dir=$("$here/stock-kernel.sh")
else
        dir=$("$here/stock-kernel.sh" --cached-only)
fi
case $? in
0) ;;
77) skip "no stock Debian kernel: run tools/kernel-vm (or IOMMUD_KVM_FETCH=1) first" ;;
*) echo "Bail out! stock-kernel.sh failed"; exit 1 ;;
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iommud-stock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
files=()
for f in "$dir"/modules/*.ko "$dir/modules/order"; do
        files+=(-f "$f:/lib/modules/iommud/$(basename "$f")")
done
"$here/mkinitramfs.sh" -x -o "$tmp/modules.cpio.gz" "${files[@]}" 2>/dev/null ||
        { echo "Bail out! building the modules archive failed"; exit 1; }
cat "$initramfs" "$tmp/modules.cpio.gz" >"$tmp/initrd"
echo "# stock kernel: $dir/vmlinuz, modules: $(tr '\n' ' ' <"$dir/modules/order")"

"$here/run-vm.sh" -m intel -k "$dir/vmlinuz" -r "$tmp/initrd" -n "$name" -T \
        -a "iommud.api=group" "${args[@]}"
