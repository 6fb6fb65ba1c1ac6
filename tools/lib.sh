# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by tools/run, tools/test and tools/bench: package check, configure, build.

set -euo pipefail

IOMMUD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building iommud needs on Debian 12.
IOMMUD_BUILD_PACKAGES=(meson ninja-build pkg-config python3 gcc libc6-dev libsystemd-dev libjson-c-dev
                       libevent-dev libcmocka-dev scdoc)
# What the test suites need in addition (real dbus-daemon and polkitd for the bus suite).
IOMMUD_TEST_PACKAGES=(dbus-daemon polkitd systemd valgrind)
# What the kernel-vm suite needs: QEMU, the guest's busybox, and the kernel build.
IOMMUD_KVM_PACKAGES=(qemu-system-x86 busybox-static cpio make gcc flex bison libelf-dev bc
                     xz-utils linux-source-6.12)

# ensure_packages PKG...: installs what is missing when root, else prints the apt-get line.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "Installing: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Missing Debian packages. Install them with:" >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# build_iommud BUILDDIR [MESON-SETUP-ARGS...]: configures (or, for a build directory configured
# before, applies the arguments to it: options given here must not be ignored), then builds.
# Meson's own output stays quiet, but what the configuration left out is printed every time.
build_iommud() {
    local builddir=$1
    shift
    if [ ! -f "$builddir/build.ninja" ]; then
        meson setup "$builddir" "$IOMMUD_SRC" "$@" >/dev/null
    elif [ $# -gt 0 ]; then
        meson setup --reconfigure "$builddir" "$IOMMUD_SRC" "$@" >/dev/null
    fi
    print_skipped "$builddir"
    meson compile -C "$builddir" >/dev/null
}

# print_skipped BUILDDIR: the configure summary's lines that say something is skipped, and why
# (the last configuration's, from its log).
print_skipped() {
    local log=$1/meson-logs/meson-log.txt
    [ -f "$log" ] || return 0
    awk '/^iommud [0-9]/ { summary = 1; lines = "" } summary && /: skipped/ { lines = lines $0 "\n" }
         END { printf "%s", lines }' "$log" |
        sed 's/^ *\([^ ][^:]*[^ ]\) *: skipped/note: \1 is skipped/' >&2
}

# require_tests BUILDDIR SUITE: fails unless the build defines at least one test in SUITE
# ("meson test --suite" with nothing to run says "No suitable tests defined." and exits 0).
require_tests() {
    local list
    list=$(meson test -C "$1" --list --suite "$2" 2>/dev/null) || true
    if ! grep -q " / " <<<"$list"; then
        echo "error: the build in $1 defines no test in suite '$2'" >&2
        return 1
    fi
}
