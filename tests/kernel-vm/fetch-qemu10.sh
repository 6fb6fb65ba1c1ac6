#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Fetches the VMM the kernel-vm suite runs inside its guest: QEMU 10 from Debian
# bookworm-backports (qemu-system-x86, qemu-system-data, seabios), at the exact versions and
# SHA-256 sums pinned below, unpacked with dpkg-deb -x into a private tree.  Nothing is
# installed over the host's QEMU, and the system's apt sources and state stay as they are:
# apt runs on a private sources list (bookworm-backports on the mirror the system already
# uses for bookworm) with private lists under the cache.  QEMU 10's libraries are bookworm's;
# as root, missing ones are installed from the system's own sources.
#
# Cache: $IOMMUD_QEMU10_CACHE (default ~/.cache/iommud/qemu10)/KEY/{debs,root}, KEY a hash of
# the pins, so changing a pin fetches anew and a rerun takes a moment.  Progress goes to
# stderr; the tree's path (with usr/bin/qemu-system-x86_64 in it) is all that goes to stdout.
#
#   fetch-qemu10.sh [--cached-only]
#
# --cached-only: print the cached tree, or exit 77 without touching apt.
# Environment: IOMMUD_DEBIAN_MIRROR overrides the mirror URI (default: the system's bookworm
# entry in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list).
#
# Exit codes: 0 fetched or cached, 77 not available here (no mirror, pinned version gone from
# the mirror, libraries missing and not root), anything else a real failure.

set -euo pipefail

# Package, version, architecture, SHA-256 of the .deb.  A backports upload replaces the
# version on the mirror; "apt-cache policy" on the private lists shows the new one.
pins=(
        "qemu-system-x86 1:10.0.2+ds-2+deb13u1~bpo12+1 amd64 4a6b1856c8b0d7df4ff8e70249e12c473ccf8d516aadb4ae14d3d938faed0c65"
        "qemu-system-data 1:10.0.2+ds-2+deb13u1~bpo12+1 all 2d831088187087013b3fcbd19bdfb955b182a2d5a08f6dafa0ad1c6d2007fb4e"
        "seabios 1.16.3-2~bpo12+1 all 48390d0a534c66d11789e39518aa219773a9d3677b29fe1af8799dfb563ec713"
)
suite=bookworm-backports
want_version="QEMU emulator version 10.0.2"

cache=${IOMMUD_QEMU10_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iommud/qemu10}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "fetch-qemu10: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "ERROR: $*"; exit 1; }

case "$cache" in
"$(cd "$here/../.." && pwd)"/*)
        die "IOMMUD_QEMU10_CACHE=$cache is inside the source tree; point it elsewhere" ;;
esac

key=$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-16)
dir=$cache/$key

if [ -f "$dir/.complete" ]; then
        say "cached: $dir"
        echo "$dir/root"
        exit 0
fi
[ "${1:-}" = --cached-only ] && skip "QEMU 10 is not in $cache (run tests/kernel-vm/fetch-qemu10.sh)"

for tool in apt-get dpkg-deb sha256sum flock ldd; do
        command -v "$tool" >/dev/null || skip "'$tool' is missing"
done

# The system's Debian mirror: the URI and keyring of the entry that serves plain "bookworm",
# from deb822 .sources files first, then the one-line sources.list.
find_mirror() {
        local f
        for f in /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] || continue
                awk '
                        function flush() {
                                if (deb && bookworm && uri != "") { print uri, (key == "" ? "-" : key); found = 1; exit }
                                deb = bookworm = 0; uri = key = ""
                        }
                        /^[ \t]*#/ { next }
                        /^[ \t]*$/ { flush(); next }
                        tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                        tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") bookworm = 1 }
                        tolower($1) == "uris:" && uri == "" { uri = $2 }
                        tolower($1) == "signed-by:" && $2 ~ /^\// { key = $2 }
                        END { if (!found) flush() }' "$f"
        done
        if [ -f /etc/apt/sources.list ]; then
                awk '$1 == "deb" {
                        key = "-"; i = 2
                        if ($2 ~ /^\[/) {
                                for (; i <= NF; i++) {
                                        if ($i ~ /^\[?signed-by=/) { key = $i; sub(/^\[?signed-by=/, "", key); sub(/\]$/, "", key) }
                                        if ($i ~ /\]$/) { i++; break }
                                }
                        }
                        if ($(i + 1) == "bookworm") print $i, key
                }' /etc/apt/sources.list
        fi
}

if [ -n "${IOMMUD_DEBIAN_MIRROR:-}" ]; then
        mirror=$IOMMUD_DEBIAN_MIRROR
        keyring=-
else
        read -r mirror keyring < <(find_mirror | head -n 1) || true
fi
[ -n "${mirror:-}" ] || skip "no Debian bookworm entry in the apt sources to take the mirror from"
[ "$keyring" = - ] && keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || skip "the archive keyring $keyring is missing (apt-get install debian-archive-keyring)"

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9
if [ -f "$dir/.complete" ]; then
        echo "$dir/root"
        exit 0
fi

# apt on private state: only the backports entry, no system preferences, an empty dpkg status.
apt=$cache/apt
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/preferences.d" "$apt/sources.list.d"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt/sources.list"
: >"$apt/status"
apt_opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
          -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
          -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status"
          -o "Dir::Cache=$apt" -o "Dir::Cache::Archives=$apt/archives")
# As root apt would hand the download to the _apt user, which cannot write into a private cache.
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)

say "updating the private package lists for $suite on $mirror"
apt-get "${apt_opts[@]}" -qq update >&2 || skip "apt-get update of $suite on $mirror failed"

tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/root"
specs=()
for pin in "${pins[@]}"; do
        read -r name version _ _ <<<"$pin"
        specs+=("$name=$version")
done
say "downloading ${specs[*]}"
if ! (cd "$tmp/debs" && apt-get "${apt_opts[@]}" -qq download "${specs[@]}" >&2); then
        for pin in "${pins[@]}"; do
                read -r name _ _ _ <<<"$pin"
                say "the mirror has $name $(apt-cache "${apt_opts[@]}" policy "$name" 2>/dev/null |
                                            awk '/Candidate:/ { print $2 }')"
        done
        skip "a pinned version is not on $mirror $suite (update the pins in $0)"
fi

for pin in "${pins[@]}"; do
        read -r name version arch sum <<<"$pin"
        deb=$tmp/debs/${name}_${version//:/%3a}_$arch.deb
        [ -f "$deb" ] || die "apt-get download left no $(basename "$deb")"
        echo "$sum  $deb" | sha256sum --quiet -c - >&2 ||
                die "$name $version does not have the pinned SHA-256 sum $sum"
        dpkg-deb -x "$deb" "$tmp/root"
done

qemu=$tmp/root/usr/bin/qemu-system-x86_64
[ -x "$qemu" ] || die "qemu-system-x86 has no usr/bin/qemu-system-x86_64"

# Its libraries are bookworm's: install the ones this machine lacks from the system's sources.
if ldd "$qemu" | grep -q 'not found'; then
        missing=()
        for dep in $(dpkg-deb -f "$tmp/debs"/qemu-system-x86_*.deb Depends | tr ',|' '\n\n' |
                     awk '{ print $1 }' | grep -E '^(lib|zlib)'); do
                dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'install ok installed' ||
                        missing+=("$dep")
        done
        [ "$(id -u)" -eq 0 ] || skip "QEMU 10 needs libraries this machine lacks: apt-get install ${missing[*]}"
        say "installing QEMU 10's libraries from bookworm: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
                skip "cannot install ${missing[*]}"
        ! ldd "$qemu" | grep 'not found' >&2 || die "QEMU 10 still misses libraries"
fi
version=$("$qemu" -L "$tmp/root/usr/share/qemu" --version | head -n 1)
case "$version" in
"$want_version"*) ;;
*) die "unexpected version: $version" ;;
esac

rm -rf "$dir"
mkdir -p "$dir"
mv "$tmp/debs" "$tmp/root" "$dir/"
touch "$dir/.complete"
say "$version: $(du -ck "$dir"/debs/*.deb | awk 'END { print $1 }') KiB of .debs, tree in $dir/root"
echo "$dir/root"
