#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest test: a real VMM on iommufd, fed by iommud.  iommud runs as root on the kernel backend
# with a policy that lets uids 1000 and 1001 take the edu device as fds ("delegation").  uid
# 1000 starts QEMU 10 through "iommuctl exec", which takes the device with OpenDevices and
# hands QEMU the fresh iommufd and the unbound cdev the way libvirt passes fds
# (-object iommufd,fd=N -device vfio-pci,iommufd=...,fd=M).  QEMU passes edu through into a
# nested guest (the same kernel, nested-edu as its test), whose TAP results come back over
# its second serial port into a file here.
#
# Asserts: QEMU runs as uid 1000, a child of iommuctl, holding /dev/iommu and the device's cdev
# under the 256 MiB memlock limit iommuctl raised, with its guest RAM pinned and charged to
# itself (VmPin, VmLck: per-process accounting); iommud shows the device held by uid 1000 and
# refuses it to uid 1001 with DeviceBusy naming uid 1000; the nested guest found edu with its
# ident and its DMA round trip matched byte for byte; QEMU exited with status 0 and the claim
# ended with it.  Then a second QEMU, killed with SIGKILL once its guest RAM is pinned: the
# claim ends at once, and uid 1001 may take the device.  Prints unnumbered TAP lines.

qemu=/usr/bin/qemu-system-x86_64
share=/usr/share/iommud-vmm
work=/run/iommud-vmm
rundir=/run/iommud
memlock=256M
memlock_bytes=268435456
limit=240
for arg in $(cat /proc/cmdline); do
        case "$arg" in
        iommud.timeout=*) limit=$((${arg#*=} - 30)) ;;
        esac
done
bdf=${IOMMUD_KVM_VFIO%% *}
failed=0
export IOMMUD_SOCKET=$rundir/org.iommud.Broker

uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failed=1; }
check() { # check CONDITION-STATUS DESCRIPTION
        if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi
}
as() { # as USER COMMAND: a shell command as vmm (uid 1000) or other (uid 1001)
        su -s /bin/sh "$1" -c "$2"
}
# Who holds the device, as iommud reports it ("" when free).
held_by() {
        iommuctl --json devices --all |
                awk -v d="\"$bdf\"" '$1 == "\"name\":" { n = ($2 == d "," || $2 == d) }
                                      n && $1 == "\"heldBy\":" { sub(/^ *"heldBy": /, "")
                                                                  sub(/,$/, "")
                                                                  if ($0 != "null") print }' |
                tr -d '"'
}
# Polls until the device is free; prints the seconds it took, or "-" when it did not get free.
wait_free() {
        t0=$(uptime_s)
        for _ in $(seq 100); do
                if [ -z "$(held_by)" ]; then since "$t0"; return 0; fi
                sleep 0.05
        done
        echo -
        return 1
}
# The pid of the process running $qemu, once one does ("" after 60 s or when $1 ended).
find_qemu() {
        for _ in $(seq 600); do
                for p in /proc/[0-9]*; do
                        [ "$(readlink "$p/exe" 2>/dev/null)" = "$qemu" ] && echo "${p#/proc/}" && return
                done
                kill -0 "$1" 2>/dev/null || return
                sleep 0.1
        done
}
# What the kernel counts for a process: VmPin (pinned pages) or VmLck (locked, charged against
# RLIMIT_MEMLOCK; iommufd adds its pins here only in per-process accounting), in kB.
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

if [ ! -x "$qemu" ] || [ ! -f "$share/bzImage" ]; then
        echo "ok - QEMU 10 as a VMM # SKIP no QEMU 10 or nested kernel in this initramfs"
        exit 77
fi
if [ -z "$bdf" ] || [ ! -d "/sys/bus/pci/devices/$bdf/vfio-dev" ]; then
        not_ok "a device bound to vfio-pci to pass through (iommud.vfio=)"
        exit 1
fi
echo "# $($qemu --version | head -n 1)"

start_iommud() {
        mkdir -p "$rundir" /tmp/iommud-empty.d
        cat >/tmp/iommud-vmm-policy.json <<EOF
{
  "rules": { "edu": { "action": "allow", "match": "$bdf" } },
  "grants": {
    "vmm": { "principals": [ { "user": 1000 } ], "devices": "$bdf", "delegation": true },
    "other": { "principals": [ { "user": 1001 } ], "devices": "$bdf", "delegation": true }
  }
}
EOF
        /usr/sbin/iommud --backend iommufd --runtime-dir "$rundir" --no-bus \
                --policy /tmp/iommud-vmm-policy.json --policy-dir /tmp/iommud-empty.d \
                --vendor-policy-dir /tmp/iommud-empty.d --log-level info 2>"$work/iommud.log" &
        iommud_pid=$!
        for _ in $(seq 600); do
                iommuctl status >/dev/null 2>&1 && return 0
                kill -0 "$iommud_pid" 2>/dev/null || break
                sleep 0.1
        done
        return 1
}

mkdir -p "$work"
printf 'root:x:0:0::/root:/bin/sh\nvmm:x:1000:1000::%s:/bin/sh\nother:x:1001:1001::/tmp:/bin/sh\n' \
        "$work" >/etc/passwd
printf 'root:x:0:\nvmm:x:1000:\nother:x:1001:\n' >/etc/group
: >"$work/nested-tap.log"
: >"$work/nested-console.log"
chown -R 1000:1000 "$work"
start_iommud
check $? "iommud runs on the kernel backend (pid $iommud_pid)"

# The administrator's limit for uid 1000: a hard limit iommuctl raises the soft one up to.
ulimit -H -l $((memlock_bytes / 1024))

# The nested guest is emulated twice over, so it is kept lean: 64 MiB (all of it below edu's
# 28-bit DMA mask) and nested-edu, a static program, as the whole initramfs.  It ends by
# rebooting, which -no-reboot turns into QEMU exiting with status 0.
qemu_args="-machine q35 -accel tcg -m 64M -smp 1 -nodefaults -no-reboot -display none \
-object iommufd,id=io0,fd={iommufd} -device vfio-pci,iommufd=io0,fd={device:$bdf}"
as vmm "exec iommuctl exec --verbose --device $bdf --memlock $memlock -- $qemu $qemu_args \
-kernel $share/bzImage -initrd $share/nested.cpio \
-append 'console=ttyS0 no_timer_check panic=-1 oops=panic' \
-serial file:$work/nested-console.log -serial file:$work/nested-tap.log" \
        </dev/null >"$work/qemu.log" 2>&1 &
exec_pid=$!
started=$(uptime_s)

# While QEMU runs: who it is, what it holds, and what iommud says about the device.
check_running() {
        ids=$(awk '/^Uid:/ { u = $2 "/" $3 "/" $4 "/" $5 } /^Gid:/ { g = $2 "/" $3 "/" $4 "/" $5 }
                   END { print u, g }' "/proc/$1/status")
        check "$([ "$ids" = "1000/1000/1000/1000 1000/1000/1000/1000" ]; echo $?)" \
                "QEMU 10 runs as uid 1000 (pid $1; uids/gids $ids)"
        parent=$(awk '/^PPid:/ { print $2 }' "/proc/$1/status")
        check "$([ "$(readlink "/proc/$parent/exe")" = /usr/bin/iommuctl ]; echo $?)" \
                "QEMU's parent is iommuctl exec (pid $parent), which holds the claim"
        fds=$(ls -l "/proc/$1/fd" 2>/dev/null)
        cdev=/dev/vfio/devices/$(ls "/sys/bus/pci/devices/$bdf/vfio-dev")
        check "$(echo "$fds" | grep -q ' 3 -> /dev/iommu$'; echo $?)" "QEMU holds an iommufd at fd 3"
        check "$(echo "$fds" | grep -q " 4 -> $cdev\$"; echo $?)" "QEMU holds $bdf's cdev $cdev at fd 4"
        lim=$(awk '/^Max locked memory/ { print $4 }' "/proc/$1/limits")
        check "$([ "$lim" = "$memlock_bytes" ]; echo $?)" "QEMU's memlock limit is $memlock ($lim)"
        holder=$(held_by)
        check "$(echo "$holder" | grep -q "^uid 1000 (pid $parent)\$"; echo $?)" \
                "iommud shows $bdf held by uid 1000's iommuctl: $holder"
        sessions=$(iommuctl --json sessions | tr -d ' \n')
        check "$(echo "$sessions" | grep -q "\"uid\":1000,[^]]*\"pid\":$parent,\"devices\":\[\"$bdf\"\]"; echo $?)" \
                "org.iommud.Manager lists uid 1000's session (pid $parent) with $bdf"
        refusal=$(as other "iommuctl exec --device $bdf -- true" 2>&1)
        rc=$?
        check "$([ $rc = 1 ] && echo "$refusal" | grep -q "held by uid 1000 (pid $parent)"; echo $?)" \
                "uid 1001 is refused with DeviceBusy naming uid 1000 (exit $rc): $refusal"
}

qemu_pid=$(find_qemu "$exec_pid")
if [ -n "$qemu_pid" ]; then
        check_running "$qemu_pid"
else
        not_ok "QEMU 10 started (no process runs $qemu)"
fi

# How long each stage takes, for the record: nested emulation is slow, and its boot the bulk.
first_output=
pinned=
locked=
while kill -0 "$exec_pid" 2>/dev/null; do
        if [ -z "$first_output" ] && [ -s "$work/nested-console.log" ]; then
                first_output=$(since "$started")
                pinned=$(vm_kb "$qemu_pid" VmPin)
                locked=$(vm_kb "$qemu_pid" VmLck)
        fi
        if [ "$(since "$started" | cut -d. -f1)" -ge "$limit" ]; then
                kill -KILL "$qemu_pid" 2>/dev/null
                timed_out=1
        fi
        sleep 0.5
done
wait "$exec_pid"
rc=$?
echo "# QEMU ran $(since "$started") s; nested kernel's first console output after ${first_output:-?} s"
sed 's/^/# qemu: /' "$work/qemu.log"
# The whole nested console goes to this guest's console, which the host keeps.
tr -d '\r' <"$work/nested-console.log" | sed 's/^/nested: /' >&2
case $rc in
0) ok "QEMU exited cleanly (status 0, passed on by iommuctl exec)" ;;
*) not_ok "QEMU exited with status $rc${timed_out:+: it did not finish within $limit s}" ;;
esac
check "$([ "${pinned:-0}" -ge 65536 ] && [ "${locked:-0}" -ge 65536 ]; echo $?)" \
        "QEMU's 64 MiB guest RAM is pinned (VmPin ${pinned:-?} kB) and charged to QEMU itself (VmLck ${locked:-?} kB)"
took=$(wait_free)
check $? "the claim ended with QEMU (free after $took s)"

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

# A QEMU that is killed: paused at its first instruction (-S), so only what realizing the
# device does happens: the bind, the IOAS, guest RAM pinned.  SIGKILL, then the claim.
# Pinning 64 MiB under TCG beside a busy host can take minutes: the loop waits for the pin
# (or QEMU's end), and its bound is only there so that a QEMU that never pins fails.
as vmm "exec iommuctl exec --device $bdf --memlock $memlock -- $qemu $qemu_args -S" \
        </dev/null >"$work/qemu-killed.log" 2>&1 &
exec_pid=$!
qemu_pid=$(find_qemu "$exec_pid")
# The figure checked is the one the loop saw: QEMU's memory listener may unmap and map again
# as it lays out the machine, so a second reading can catch it between the two.
pinned=
for _ in $(seq 3000); do
        pinned=$(vm_kb "$qemu_pid" VmPin)
        [ "${pinned:-0}" -ge 65536 ] 2>/dev/null && break
        kill -0 "$exec_pid" 2>/dev/null || break
        sleep 0.1
done
check "$([ "${pinned:-0}" -ge 65536 ] && [ -n "$(held_by)" ]; echo $?)" \
        "a second QEMU (pid ${qemu_pid:-?}) pinned its guest RAM (${pinned:-?} kB) under the claim"
kill -KILL "$qemu_pid" 2>/dev/null
wait "$exec_pid"
rc=$?
took=$(wait_free)
check "$([ "$took" != - ] && [ $rc = 137 ]; echo $?)" \
        "SIGKILL to QEMU ends the claim at once (iommuctl exit $rc, free after $took s)"
out=$(as other "iommuctl exec --device $bdf -- true" 2>&1)
check $? "uid 1001 may take the device now${out:+: $out}"

kill "$iommud_pid"
wait "$iommud_pid"
sed 's/^/# iommud: /' "$work/iommud.log"
[ $failed = 0 ]
