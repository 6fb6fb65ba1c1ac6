#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the kernel-vm guest's initramfs: a gzip'd newc cpio with Debian's static busybox,
# tests/kernel-vm/init as /init and the guest test programs in /tests, run in the order given.
# Dynamic ELF programs bring every library ldd lists, and the dynamic loader, at the same
# paths as on the host (libsystemd, json-c and libevent have no static builds on Debian).
#
#   mkinitramfs.sh -o OUT.cpio.gz [-x] [-u] [-i INIT] [-t PROGRAM[:NAME]]... [-f SRC:DEST]...
#
# -t installs PROGRAM as /tests/NN-NAME (NN is its position); -f copies any other file.
# -x builds an archive of the -f files (and their libraries) only: no busybox, /init or tests.
# Appended to a full one it adds to it (the kernel unpacks concatenated archives in order); or
# it is a whole initramfs when one of the files is a static /init.
# -u leaves the archive uncompressed: a guest under nested emulation inflates at well under
# 1 MB/s, while copying a plain cpio costs next to nothing.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=
init=$here/init
tests=()
files=()
extra=0
compress=(gzip -1)
busybox=${IOMMUD_KVM_BUSYBOX:-/bin/busybox}

die() { echo "mkinitramfs: ERROR: $*" >&2; exit 1; }

while getopts "o:i:t:f:xu" opt; do
        case $opt in
        o) out=$OPTARG ;;
        i) init=$OPTARG ;;
        t) tests+=("$OPTARG") ;;
        f) files+=("$OPTARG") ;;
        x) extra=1 ;;
        u) compress=(cat) ;;
        *) die "usage: $0 -o OUT [-x] [-u] [-i INIT] [-t PROGRAM[:NAME]]... [-f SRC:DEST]..." ;;
        esac
done
[ -n "$out" ] || die "no output given (-o)"
for tool in cpio gzip ldd; do
        command -v "$tool" >/dev/null || die "'$tool' is missing"
done
[ $extra = 1 ] || [ -x "$busybox" ] || die "$busybox is missing (apt-get install busybox-static)"

root=$(mktemp -d "${TMPDIR:-/tmp}/iommud-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
[ $extra = 1 ] || mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,tests}

# copy_with_libs SRC DEST: the file, and for a dynamic ELF every library it loads.
copy_with_libs() {
        local src=$1 dest=$2 lib
        mkdir -p "$root$(dirname "$dest")"
        cp -L "$src" "$root$dest"
        # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader;
        # "not a dynamic executable" (static, scripts) prints neither.
        { ldd "$src" 2>/dev/null || true; } | awk '
                $2 == "=>" && $3 ~ /^\// { print $3 }
                $1 ~ /^\// { print $1 }' | while read -r lib; do
                at=$lib
                # A library of the build tree (libiommud) goes to /usr/local/lib: the tree's
                # own path may be below /tmp or /run, which /init mounts over.
                case $lib in
                /lib/* | /lib64/* | /usr/lib/* | /usr/lib64/*) ;;
                *) at=/usr/local/lib/$(basename "$lib") ;;
                esac
                [ -e "$root$at" ] && continue
                mkdir -p "$root$(dirname "$at")"
                cp -L "$lib" "$root$at"
        done
        if { ldd "$src" 2>/dev/null || true; } | grep -q "not found"; then
                die "$src needs libraries ldd cannot find: $(ldd "$src" | grep 'not found' | tr -s ' \n' ' ')"
        fi
}

if [ $extra = 0 ]; then
        # busybox-static has no loader; Debian's dynamic busybox brings its libc like any program.
        copy_with_libs "$busybox" /bin/busybox
        ln -s busybox "$root/bin/sh"
        install -m 0755 "$init" "$root/init"
fi

n=10
for t in "${tests[@]}"; do
        src=${t%%:*}
        name=$(basename "$src")
        [ "$t" != "$src" ] && name=${t#*:}
        [ -f "$src" ] || die "test program $src does not exist"
        copy_with_libs "$src" "/tests/$n-${name%.sh}"
        chmod 0755 "$root/tests/$n-${name%.sh}"
        n=$((n + 10))
done
for f in "${files[@]}"; do
        copy_with_libs "${f%%:*}" "${f#*:}"
done

# The loader has no ld.so.cache here: tell it every directory libraries were copied to (an
# extra archive names its own file, which /init adds, so it does not replace the first one's).
ld_path=/etc/ld-library-path
if [ $extra = 1 ]; then
        ld_path=$(basename "$out")
        ld_path=/etc/ld-library-path.${ld_path%%.*}
fi
mkdir -p "$root/etc"
find "$root" -name '*.so*' -type f -printf '%h\n' | sed "s|^$root||" | sort -u | paste -sd: \
        >"$root$ld_path"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
        "${compress[@]}" >"$out.tmp"
mv "$out.tmp" "$out"
echo "mkinitramfs: $out: $(du -k "$out" | cut -f1) KiB, ${#tests[@]} test program(s)" >&2
