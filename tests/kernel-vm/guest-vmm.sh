#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest test: a real VMM on iommufd.  QEMU 10 runs as uid 1000 with pre-opened fds, the way
# libvirt passes them (-object iommufd,fd=N -device vfio-pci,iommufd=...,fd=M), and passes
# the guest's edu device through into a nested guest (the same kernel, nested-edu as its
# test), whose TAP results come back over its second serial port into a file here.
#
# The fds come from a launcher taking "--device BDF --memlock SIZE -- CMD ARGS" with
# "{iommufd}" and "{device:BDF}" placeholders in ARGS: vmm-launch by default, or the
# command named on the kernel command line by iommud.vmm-launcher=WORD,WORD,...
#
# Asserts: QEMU runs as uid 1000 holding /dev/iommu and the device's cdev under a 256 MiB
# memlock limit; the nested guest found edu with its ident; its DMA round trip matched byte
# for byte; it finished; QEMU exited with status 0.  Prints unnumbered TAP lines.

qemu=/usr/bin/qemu-system-x86_64
share=/usr/share/iommud-vmm
work=/run/iommud-vmm
uid=1000
memlock=256M
memlock_bytes=268435456
limit=240
launcher="/usr/libexec/iommud-vmm/vmm-launch --uid $uid --gid $uid"
for arg in $(cat /proc/cmdline); do
        case "$arg" in
        iommud.vmm-launcher=*) launcher=$(echo "${arg#*=}" | tr , ' ') ;;
        iommud.timeout=*) limit=$((${arg#*=} - 30)) ;;
        esac
done
bdf=${IOMMUD_KVM_VFIO%% *}
failed=0

uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failed=1; }
check() { # check CONDITION-STATUS DESCRIPTION
        if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi
}

if [ ! -x "$qemu" ] || [ ! -f "$share/bzImage" ]; then
        echo "ok - QEMU 10 as a VMM # SKIP no QEMU 10 or nested kernel in this initramfs"
        exit 77
fi
if [ -z "$bdf" ] || [ ! -d "/sys/bus/pci/devices/$bdf/vfio-dev" ]; then
        not_ok "a device bound to vfio-pci to pass through (iommud.vfio=)"
        exit 1
fi
echo "# $($qemu --version | head -n 1)"
echo "# launcher: $launcher"

mkdir -p "$work"
chown "$uid:$uid" "$work"
: >"$work/nested-tap.log"
: >"$work/nested-console.log"
chown "$uid:$uid" "$work"/*.log

# busybox timeout execs the command in its own process (a child does the killing), so $! is
# the launcher's pid, then QEMU's once the launcher has exec'ed it.  SIGKILL: on SIGTERM QEMU
# exits with status 0, which would pass for a clean finish.
# The nested guest is emulated twice over, so it is kept lean: 64 MiB (all of it below edu's
# 28-bit DMA mask) and nested-edu, a static program, as the whole initramfs.  It ends by
# rebooting, which -no-reboot turns into QEMU exiting with status 0.
timeout -s KILL "$limit" $launcher --device "$bdf" --memlock "$memlock" -- \
        "$qemu" -machine q35 -accel tcg -m 64M -smp 1 \
        -nodefaults -no-reboot -display none \
        -object iommufd,id=io0,fd={iommufd} \
        -device "vfio-pci,iommufd=io0,fd={device:$bdf}" \
        -kernel "$share/bzImage" -initrd "$share/nested.cpio" \
        -append "console=ttyS0 no_timer_check panic=-1 oops=panic" \
        -serial "file:$work/nested-console.log" -serial "file:$work/nested-tap.log" \
        </dev/null >"$work/qemu.log" 2>&1 &
launcher_pid=$!
started=$(uptime_s)

# Find QEMU once it runs (directly, or as a child of a launcher that stays its parent).
qemu_pid=
for _ in $(seq 600); do
        for p in /proc/[0-9]*; do
                [ "$(readlink "$p/exe" 2>/dev/null)" = "$qemu" ] && qemu_pid=${p#/proc/} && break
        done
        [ -n "$qemu_pid" ] && break
        kill -0 "$launcher_pid" 2>/dev/null || break
        sleep 0.1
done
if [ -n "$qemu_pid" ]; then
        ids=$(awk '/^Uid:/ { u = $2 "/" $3 "/" $4 "/" $5 } /^Gid:/ { g = $2 "/" $3 "/" $4 "/" $5 }
                   END { print u, g }' "/proc/$qemu_pid/status")
        want="$uid/$uid/$uid/$uid $uid/$uid/$uid/$uid"
        check "$([ "$ids" = "$want" ]; echo $?)" "QEMU 10 runs as uid $uid (pid $qemu_pid; uids/gids $ids)"
        fds=$(ls -l "/proc/$qemu_pid/fd" 2>/dev/null)
        cdev=/dev/vfio/devices/$(ls "/sys/bus/pci/devices/$bdf/vfio-dev")
        check "$(echo "$fds" | grep -q ' -> /dev/iommu$'; echo $?)" "QEMU holds an iommufd"
        check "$(echo "$fds" | grep -q " -> $cdev\$"; echo $?)" "QEMU holds $bdf's cdev $cdev"
        lim=$(awk '/^Max locked memory/ { print $4 }' "/proc/$qemu_pid/limits")
        check "$([ "$lim" = "$memlock_bytes" ]; echo $?)" "QEMU's memlock limit is $memlock ($lim)"
else
        not_ok "QEMU 10 started (no process runs $qemu)"
fi

# How long each stage takes, for the record: nested emulation is slow, and its boot the bulk.
first_output=
while kill -0 "$launcher_pid" 2>/dev/null; do
        if [ -z "$first_output" ] && [ -s "$work/nested-console.log" ]; then
                first_output=$(since "$started")
        fi
        sleep 0.5
done
wait "$launcher_pid"
rc=$?
echo "# QEMU ran $(since "$started") s; nested kernel's first console output after ${first_output:-?} s"
sed 's/^/# qemu: /' "$work/qemu.log"
# The whole nested console goes to this guest's console, which the host keeps.
tr -d '\r' <"$work/nested-console.log" | sed 's/^/nested: /' >&2
case $rc in
0) ok "QEMU exited cleanly (status 0)" ;;
137) not_ok "QEMU did not finish within $limit s" ;;
*) not_ok "QEMU exited with status $rc" ;;
esac

# The nested guest's results, as its own init printed them, then what this test requires.
tr -d '\r' <"$work/nested-tap.log" | while IFS= read -r line; do
        case "$line" in
        "ok "*|"not ok "*) echo "$line" | sed -E 's/^(not ok|ok)( [0-9]+)?( -)? ?/\1 - nested: /' ;;
        "#"*) echo "# nested:${line#\#}" ;;
        esac
done
nested=$(tr -d '\r' <"$work/nested-tap.log")
check "$(echo "$nested" | grep -q '^ok - found edu 1234:11e8 at '; echo $?)" \
        "nested guest found the edu device (1234:11e8)"
check "$(echo "$nested" | grep -q '^ok - edu ident register reads 0x010000ed'; echo $?)" \
        "nested guest read edu's ident 0x010000ed"
check "$(echo "$nested" | grep -q '^ok - DMA round trip of [0-9]* bytes matched byte for byte'; echo $?)" \
        "nested guest's DMA round trip through edu matched byte for byte"
check "$(echo "$nested" | grep -q '^not ok'; [ $? != 0 ]; echo $?)" "nested guest reported no failure"
check "$(echo "$nested" | grep -q '^IOMMUD-KVM-DONE'; echo $?)" "nested guest ran to completion"

[ $failed = 0 ]
