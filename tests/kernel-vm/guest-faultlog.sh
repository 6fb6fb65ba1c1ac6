#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest test, run after guest-dma: the IOMMU blocked the DMA to the unmapped IOVA and the
# kernel logged it as a translation fault of an edu device (Intel: "DMAR: [DMA Write ...",
# AMD: "AMD-Vi: Event logged [IO_PAGE_FAULT ...").  Unnumbered TAP lines (see init).

case $IOMMUD_KVM_MODE in
intel) pattern='DMAR: \[DMA Write' ;;
amd)
        # QEMU 7.2's amd-iommu blocks the access but queues no IO_PAGE_FAULT event for it.
        echo "ok - the kernel logged the blocked DMA as an IOMMU fault # SKIP QEMU 7.2 amd-iommu reports no page faults"
        exit 0 ;;
*) echo "ok - IOMMU fault log # SKIP unknown mode '$IOMMUD_KVM_MODE'"; exit 0 ;;
esac

faults=$(dmesg | grep -E "$pattern")
echo "$faults" | sed -n '1,6s/^/# /p'
if [ -n "$faults" ]; then
        echo "ok - the kernel logged the blocked DMA as an IOMMU fault"
else
        echo "not ok - the kernel logged the blocked DMA as an IOMMU fault (no '$pattern' in dmesg)"
fi
for bdf in $IOMMUD_KVM_VFIO; do
        [ "$(cat /sys/bus/pci/devices/$bdf/device)" = 0x11e8 ] || continue
        short=${bdf#0000:}
        # Behind the PCIe-to-PCI bridge the requester ID is the bridge's: secondary bus, 00.0.
        case $short in
        00:*) ;;
        *) short=${short%%:*}:00.0 ;;
        esac
        if echo "$faults" | grep -q "$short"; then
                echo "ok - fault logged for edu $bdf as requester $short"
        else
                echo "not ok - fault logged for edu $bdf as requester $short"
        fi
done
exit 0
