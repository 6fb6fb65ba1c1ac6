#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the kernel the kernel-vm suite boots: Debian's linux-source-6.12, "make tinyconfig"
# plus tests/kernel-vm/kernel.config (iommufd, VFIO cdev, Intel and AMD IOMMUs).
#
# The bzImage is cached under $IOMMUD_KVM_CACHE (default ~/.cache/iommud/kernel-vm) by a hash
# of the source package version and the fragment, so a rerun takes a moment.  Progress goes
# to stderr; the bzImage path is the only thing printed on stdout.
#
# --cached-only: print the cached image, or exit 77 without installing or building anything.
#
# Exit codes: 0 built or cached, 77 the kernel cannot be built here (no source package and no
# way to get it, missing tools), anything else a real failure.

set -euo pipefail

cached_only=0
[ "${1:-}" = --cached-only ] && cached_only=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/kernel.config
pkg=linux-source-6.12
cache=${IOMMUD_KVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iommud/kernel-vm}
jobs=${IOMMUD_KVM_JOBS:-$(nproc)}

# Options the suite cannot work without; the build fails if olddefconfig dropped any.
critical=(IOMMUFD VFIO_DEVICE_CDEV VFIO_PCI INTEL_IOMMU AMD_IOMMU IRQ_REMAP BLK_DEV_INITRD
          SERIAL_8250_CONSOLE DEVTMPFS MEMFD_CREATE)
# Options that only widen what the guest can test; losing them is reported, not fatal.
optional=(IOMMUFD_TEST DEBUG_FS TRANSPARENT_HUGEPAGE PCI_PF_STUB)

say() { echo "build-kernel: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "ERROR: $*"; exit 1; }

# The image's name: source package version and fragment.
cache_key() { { echo "$pkg $version"; cat "$fragment"; } | sha256sum | cut -c1-16; }

case "$cache" in
"$(cd "$here/../.." && pwd)"/*)
        die "IOMMUD_KVM_CACHE=$cache is inside the source tree; point it elsewhere" ;;
esac

if [ $cached_only = 1 ]; then
        version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) ||
                version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        image=$cache/bzImage-$(cache_key)
        [ -n "$version" ] && [ -f "$image" ] || skip "no cached kernel for $pkg ${version:-?} in $cache"
        echo "$image"
        exit 0
fi

for tool in make gcc flex bison bc xz tar cpio sha256sum; do
        command -v "$tool" >/dev/null || skip "'$tool' is missing (apt-get install flex bison libelf-dev bc xz-utils cpio build-essential)"
done
[ -e /usr/include/libelf.h ] || skip "libelf headers are missing (apt-get install libelf-dev)"

mkdir -p "$cache"

# Find the source tarball: installed package, or fetch it (apt-get install as root,
# apt-get download otherwise) into the cache.
tarball=/usr/src/$pkg.tar.xz
version=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null |
          awk '$3 == "installed" { print $4 }') || true
if [ -z "$version" ] || [ ! -f "$tarball" ]; then
        if [ "$(id -u)" -eq 0 ]; then
                say "installing $pkg (apt-get)"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
                        { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
                          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; } ||
                        skip "cannot install $pkg (is bookworm-security in the apt sources?)"
                version=$(dpkg-query -W -f='${Version}' "$pkg")
        else
                version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
                [ -n "$version" ] && [ "$version" != "(none)" ] ||
                        skip "$pkg is not installed and apt knows no candidate for it"
                tarball=$cache/pkg-$version/usr/src/$pkg.tar.xz
                if [ ! -f "$tarball" ]; then
                        say "downloading $pkg $version (apt-get download)"
                        tmp=$(mktemp -d "$cache/download.XXXXXX")
                        (cd "$tmp" && apt-get download -qq "$pkg=$version" >/dev/null) ||
                                { rm -rf "$tmp"; skip "cannot download $pkg $version"; }
                        dpkg-deb -x "$tmp"/*.deb "$cache/pkg-$version"
                        rm -rf "$tmp"
                fi
        fi
fi
[ -f "$tarball" ] || die "$tarball is missing although $pkg $version is present"

key=$(cache_key)
image=$cache/bzImage-$key
if [ -f "$image" ]; then
        say "cached: $pkg $version, fragment $key"
        echo "$image"
        exit 0
fi

# One build at a time per cache (parallel meson tests, a CI step and a developer's shell).
exec 9>"$cache/lock"
flock 9
if [ -f "$image" ]; then
        echo "$image"
        exit 0
fi

src=$cache/src-$version
if [ ! -f "$src/.extracted" ]; then
        say "extracting $tarball"
        rm -rf "$src"
        mkdir -p "$src"
        tar -xJf "$tarball" -C "$src" --strip-components=1
        touch "$src/.extracted"
fi

obj=$cache/obj-$key
mkdir -p "$obj"
kmake() { make -s -C "$src" O="$obj" ARCH=x86_64 "$@"; }

say "configuring (tinyconfig + $(basename "$fragment")) in $obj"
kmake tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment" >/dev/null
kmake olddefconfig >/dev/null

missing=()
for opt in "${critical[@]}"; do
        grep -qx "CONFIG_$opt=y" "$obj/.config" || missing+=("$opt")
done
[ ${#missing[@]} -eq 0 ] ||
        die "olddefconfig dropped: ${missing[*]} (check the dependencies in $(basename "$fragment"))"
for opt in "${optional[@]}"; do
        grep -qx "CONFIG_$opt=y" "$obj/.config" || say "note: CONFIG_$opt did not survive olddefconfig"
done

say "building bzImage with $jobs jobs (a few minutes on 2 cores)"
start=$(date +%s)
if ! kmake -j"$jobs" bzImage >"$obj/build.log" 2>&1; then
        tail -n 40 "$obj/build.log" >&2
        die "kernel build failed; full log: $obj/build.log"
fi
say "built in $(( $(date +%s) - start )) s"

cp "$obj/arch/x86/boot/bzImage" "$image.tmp"
cp "$obj/.config" "$image.config"
mv "$image.tmp" "$image"
echo "$image"
