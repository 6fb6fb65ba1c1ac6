#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest test, run after guest-dma: the IOMMU blocked the DMA to the unmapped IOVA and the
# kernel logged it as a translation fault of an edu device (Intel: "DMAR: [DMA Write ...",
# AMD: "AMD-Vi: Event logged [IO_PAGE_FAULT ...").  Unnumbered TAP lines (see init).

case $IOMMUD_KVM_MODE in
intel) pattern='DMAR: \[DMA Write' ;;
amd) pattern='IO_PAGE_FAULT' ;;
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
        if echo "$faults" | grep -q "$short"; then
                echo "ok - fault logged for edu $short"
        else
                echo "not ok - fault logged for edu $short"
        fi
done
exit 0
