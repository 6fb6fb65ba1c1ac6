#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Boots the kernel-vm guest under QEMU (q35, TCG) with an emulated Intel or AMD IOMMU and
# re-emits the guest's test results as numbered TAP on stdout.
#
#   run-vm.sh -m intel|amd|mock -r INITRAMFS [-k BZIMAGE] [-l LOGDIR] [-t TIMEOUT] [-s TESTS] [-n NAME]
#             [-M MEMORY] [-a KERNEL-ARGS] [-T]
#
# -s picks guest programs by name (comma-separated, without the NN- prefix; default all);
# -n names this run in the log files (default: the mode); -T leaves the verdict to the TAP
# lines and exits 0 after a failure too (meson's TAP protocol calls any non-zero exit an
# error, which a should_fail test cannot expect).  -M sets the guest's RAM (default 1G), -a adds
# to the kernel command line.
#
# Guest machine (fixed addresses; guest-topology.sh knows them):
#   00:03.0 edu (1234:11e8)       bound to vfio-pci
#   00:04.0 e1000e                left without a driver
#   00:05.0 pcie-pci-bridge
#     01:01.0 pci-testdev         bound to vfio-pci
#     01:02.0 edu                 bound to vfio-pci
#
# Fails (TAP "not ok" and exit 1) on a timeout, a kernel panic or oops, a missing completion
# marker, any guest "not ok" or "Bail out!".  When QEMU or a kernel image is unavailable it
# prints a TAP skip plan ("1..0 # SKIP reason") and exits 0: under meson's TAP protocol exit 77
# would count as an error.  The kernel comes from -k, $IOMMUD_KVM_KERNEL, or build-kernel.sh's cache; the
# build itself is a separate step (tools/kernel-vm) unless IOMMUD_KVM_BUILD=1.
#
# Logs: LOGDIR/kernel-vm-NAME.console.log (the whole serial console), .tap.log, .qemu.log.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=
initramfs=
kernel=${IOMMUD_KVM_KERNEL:-}
logdir=.
vm_timeout=${IOMMUD_KVM_TIMEOUT:-600}
marker=IOMMUD-KVM-DONE
vfio_devices=0000:00:03.0,0000:01:01.0,0000:01:02.0

skip() {
        echo "run-vm: SKIP: $*" >&2
        echo "1..0 # SKIP $*"
        exit 0
}
die() { echo "run-vm: ERROR: $*" >&2; echo "Bail out! $*"; exit 1; }

tests=
name=
tap_only=0
memory=1G
extra_args=
while getopts "m:r:k:l:t:s:n:M:a:T" opt; do
        case $opt in
        m) mode=$OPTARG ;;
        r) initramfs=$OPTARG ;;
        k) kernel=$OPTARG ;;
        l) logdir=$OPTARG ;;
        t) vm_timeout=$OPTARG ;;
        s) tests=$OPTARG ;;
        n) name=$OPTARG ;;
        M) memory=$OPTARG ;;
        a) extra_args=$OPTARG ;;
        T) tap_only=1 ;;
        *) die "usage: $0 -m intel|amd|mock -r INITRAMFS [-k BZIMAGE] [-l LOGDIR] [-t TIMEOUT] [-s TESTS] [-n NAME] [-M MEMORY] [-a KERNEL-ARGS] [-T]" ;;
        esac
done
case $mode in
intel) iommu=(-device intel-iommu,intremap=on,caching-mode=on); iommu_arg="intel_iommu=on" ;;
amd) iommu=(-device amd-iommu,intremap=on); iommu_arg="" ;; # AMD-Vi is on by default
# No emulated IOMMU: the kernel's mock IOMMU (IOMMUFD_TEST) is then the only one, which 6.12
# needs to probe its device; no device can be bound to vfio-pci.
mock) iommu=(); iommu_arg=""; vfio_devices= ;;
*) die "unknown mode '$mode' (intel, amd or mock)" ;;
esac
[ -f "$initramfs" ] || die "initramfs '$initramfs' does not exist"

qemu=${IOMMUD_KVM_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || skip "$qemu is not installed (apt-get install qemu-system-x86)"

if [ -z "$kernel" ]; then
        if [ "${IOMMUD_KVM_BUILD:-0}" = 1 ]; then
                kernel=$("$here/build-kernel.sh")
                rc=$?
        else
                kernel=$("$here/build-kernel.sh" --cached-only)
                rc=$?
        fi
        case $rc in
        0) ;;
        77) skip "no kernel image with iommufd: run tools/kernel-vm (or tests/kernel-vm/build-kernel.sh) first" ;;
        *) die "build-kernel.sh failed with status $rc" ;;
        esac
fi
[ -f "$kernel" ] || die "kernel image '$kernel' does not exist"

# TCG unless asked otherwise: KVM on these machines cannot run a stock kernel (the guest hangs
# in the decompressor), and a silent hang costs the whole timeout.
accel=${IOMMUD_KVM_ACCEL:-tcg}

mkdir -p "$logdir"
name=${name:-$mode}
console=$logdir/kernel-vm-$name.console.log
tap=$logdir/kernel-vm-$name.tap.log
: >"$console"
: >"$tap"

start=$(date +%s.%N)
timeout --kill-after=10 "$vm_timeout" "$qemu" \
        -machine q35,kernel-irqchip=split -accel "$accel" -m "$memory" -smp 1 \
        -nodefaults -no-reboot -display none \
        "${iommu[@]}" \
        -device edu,addr=03.0 \
        -device e1000e,addr=04.0 \
        -device pcie-pci-bridge,id=br0,addr=05.0 \
        -device pci-testdev,bus=br0,addr=01.0 \
        -device edu,bus=br0,addr=02.0 \
        -kernel "$kernel" -initrd "$initramfs" \
        -append "console=ttyS0 $iommu_arg no_timer_check panic=-1 oops=panic iommud.mode=$mode iommud.vfio=$vfio_devices iommud.timeout=$((vm_timeout / 2))${tests:+ iommud.tests=$tests}${extra_args:+ $extra_args}" \
        -serial "file:$console" -serial "file:$tap" \
        </dev/null >"$logdir/kernel-vm-$name.qemu.log" 2>&1
qemu_rc=$?
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# Number the guest's result lines (replacing any number a program gave them: each guest
# program has its own plan); pass comments through, drop the programs' own plans.  A guest
# program's "Bail out!" becomes a failed result: the run goes on to its host-side verdicts.
n=0
failed=0
tap_re='^(not ok|ok)( [0-9]+)?(.*)$'
while IFS= read -r line; do
        line=${line%$'\r'}
        if [[ $line =~ $tap_re ]]; then
                n=$((n + 1))
                [ "${BASH_REMATCH[1]}" = "not ok" ] && failed=1
                echo "${BASH_REMATCH[1]} $n${BASH_REMATCH[3]}"
        elif [[ $line == "Bail out!"* ]]; then
                n=$((n + 1))
                failed=1
                echo "not ok $n - a guest program bailed out: ${line#Bail out!}"
        elif [[ $line == "#"* ]]; then
                echo "$line"
        elif [[ $line == "BENCH "* ]]; then
                # A figure for tools/bench (bench/bench-report.h), a comment to TAP.
                echo "# $line"
        fi
done <"$tap"

# Host-side verdicts on the boot as a whole.
verdict() { # verdict OK? DESCRIPTION
        n=$((n + 1))
        if [ "$1" = 1 ]; then
                echo "ok $n - $2"
        else
                echo "not ok $n - $2"
                failed=1
        fi
}
panic=$(grep -m1 -E "Kernel panic|BUG:|Oops|WARNING: CPU|general protection fault" "$console" | tr -d '\r')
verdict "$([ -z "$panic" ] && echo 1)" "$mode: no kernel panic, oops or warning${panic:+ ($panic)}"
if [ $qemu_rc -eq 124 ] || [ $qemu_rc -eq 137 ]; then
        verdict 0 "$mode: guest finished within $vm_timeout s"
else
        verdict "$([ $qemu_rc -eq 0 ] && echo 1)" "$mode: QEMU exited cleanly (status $qemu_rc)"
fi
verdict "$(grep -q "^$marker" "$tap" && echo 1)" "$mode: guest printed the completion marker"
echo "# $mode: boot + tests + poweroff took $elapsed s (accel $accel)"
echo "1..$n"

if [ $failed -ne 0 ]; then
        echo "run-vm: FAILED; serial console log: $console" >&2
        [ $qemu_rc -ne 0 ] && sed 's/^/run-vm: qemu: /' "$logdir/kernel-vm-$name.qemu.log" >&2
        tail -n 30 "$console" | sed 's/^/run-vm: console: /' >&2
        [ $tap_only = 1 ] && exit 0
        exit 1
fi
exit 0
