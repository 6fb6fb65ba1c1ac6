#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest test: the IOMMU topology the kernel reports for the machine run-vm.sh builds.
#   00:03.0 edu            its own group
#   00:04.0 e1000e         its own group
#   00:05.0 pcie-pci-bridge, behind it 01:01.0 pci-testdev and 01:02.0 edu: one group of three
#   00:1f.{0,2,3} chipset  one group (Intel: plus the ISA/floppy direct-relaxable window)
# Prints unnumbered TAP lines (see init).  IOMMUD_KVM_MODE is intel or amd.

mode=$IOMMUD_KVM_MODE
failed=0

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; failed=1; }
check() { # check DESCRIPTION COMMAND...
        desc=$1
        shift
        if "$@"; then ok "$desc"; else nok "$desc"; fi
}

group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
members() { ls "/sys/kernel/iommu_groups/$1/devices" | tr '\n' ' ' | sed 's/ $//'; }
has_region() { grep -qx "$2" "/sys/kernel/iommu_groups/$1/reserved_regions"; }

# The IOMMU driver that claimed the emulated unit.
case $mode in
intel) check "intel mode: DMAR unit dmar0 in /sys/class/iommu" test -d /sys/class/iommu/dmar0 ;;
amd) check "amd mode: AMD-Vi unit ivhd0 in /sys/class/iommu" test -d /sys/class/iommu/ivhd0 ;;
*) nok "unknown iommu mode '$mode'" ;;
esac
[ -d /sys/class/iommu/iommufd_selftest_iommu.0 ] &&
        echo "# iommufd_selftest_iommu.0 present (IOMMUFD_TEST mock domain)"

if [ "$IOMMUD_KVM_API" = group ]; then
        check "no /dev/iommu: this kernel has no iommufd" test ! -e /dev/iommu
        check "/dev/vfio/vfio (the legacy container) is a character device" test -c /dev/vfio/vfio
else
        check "/dev/iommu is a character device" test -c /dev/iommu
fi

# Every PCI function is in a group, except an IOMMU's own function (class 08:06, AMD-Vi).
nogroup=
for d in /sys/bus/pci/devices/*; do
        case $(cat "$d/class") in
        0x0806*) echo "# $(basename "$d") is the IOMMU itself (class $(cat "$d/class"))"; continue ;;
        esac
        [ -e "$d/iommu_group" ] || nogroup="$nogroup $(basename "$d")"
done
check "every PCI device has an IOMMU group${nogroup:+ (missing:$nogroup)}" test -z "$nogroup"

groups=$(ls /sys/kernel/iommu_groups | sort -n)
echo "# $(echo $groups | wc -w) groups"
for g in $groups; do
        echo "# group $g [$(cat /sys/kernel/iommu_groups/$g/type)]: $(members "$g")"
        sed "s/^/#     /" "/sys/kernel/iommu_groups/$g/reserved_regions"
done

msi="0x00000000fee00000 0x00000000feefffff msi"
amd_rsv="0x000000fd00000000 0x000000ffffffffff reserved"
isa="0x0000000000000000 0x0000000000ffffff direct-relaxable"
for g in $groups; do
        check "group $g reserves the MSI window" has_region "$g" "$msi"
        [ "$mode" = amd ] && check "group $g reserves the AMD HyperTransport hole" has_region "$g" "$amd_rsv"
        type=$(cat "/sys/kernel/iommu_groups/$g/type")
        case $type in
        DMA|DMA-FQ) ok "group $g default domain is a translating one ($type)" ;;
        *) nok "group $g default domain is a translating one (got '$type')" ;;
        esac
        if grep -q " direct$" "/sys/kernel/iommu_groups/$g/reserved_regions"; then
                nok "group $g has no firmware 'direct' region"
        fi
done

# Grouping.
edu=$(group_of 0000:00:03.0)
nic=$(group_of 0000:00:04.0)
bridge=$(group_of 0000:00:05.0)
lpc=$(group_of 0000:00:1f.0)
check "edu 00:03.0 is alone in group $edu" test "$(members "$edu")" = "0000:00:03.0"
check "e1000e 00:04.0 is alone in group $nic" test "$(members "$nic")" = "0000:00:04.0"
check "bridge group $bridge holds the bridge, pci-testdev and edu" \
        test "$(members "$bridge")" = "0000:00:05.0 0000:01:01.0 0000:01:02.0"
check "chipset functions 00:1f.{0,2,3} share group $lpc" \
        test "$(members "$lpc")" = "0000:00:1f.0 0000:00:1f.2 0000:00:1f.3"
if [ "$mode" = intel ]; then
        check "chipset group $lpc has the ISA direct-relaxable window" has_region "$lpc" "$isa"
        check "edu group $edu has no direct-relaxable window" sh -c "! grep -q direct-relaxable /sys/kernel/iommu_groups/$edu/reserved_regions"
fi

# Devices bound by init: a cdev whose dev file matches the node in /dev, or (stock kernels)
# the group's node.
for bdf in $IOMMUD_KVM_VFIO; do
        if [ "$IOMMUD_KVM_API" = group ]; then
                g=$(group_of "$bdf")
                check "$bdf is reached through group node /dev/vfio/$g" test -c "/dev/vfio/$g"
                # What iommud's topology reader takes as the sign of the legacy group file.
                check "group $g has its VFIO group device in sysfs (class/vfio/$g)" \
                        test -e "/sys/class/vfio/$g"
                continue
        fi
        cdev=$(ls "/sys/bus/pci/devices/$bdf/vfio-dev" 2>/dev/null)
        want=$(cat "/sys/bus/pci/devices/$bdf/vfio-dev/$cdev/dev" 2>/dev/null)
        got=$(stat -c '%t:%T' "/dev/vfio/devices/$cdev" 2>/dev/null)
        # stat prints hex; convert the sysfs decimal MAJ:MIN to compare.
        want_hex=$(printf '%x:%x' "${want%:*}" "${want#*:}" 2>/dev/null)
        check "$bdf has cdev /dev/vfio/devices/${cdev:-?} ($want)" test -n "$cdev" -a "$got" = "$want_hex"
done
if [ "$IOMMUD_KVM_API" != group ]; then
        grep -q ' vfio-dev$' /proc/devices
        check "vfio-dev chrdev region registered" test $? -eq 0
fi

exit 0
