#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The installed units, checked by systemd itself:
#   - "systemd-analyze verify" prints nothing (any warning fails);
#   - "systemd-analyze security --offline=true" rates iommud.service 2.0 or lower;
#   - LimitNOFILE= covers the shipped policy's max-connections × (max-fds-per-message + 4).
#
# The build is installed into a scratch DESTDIR (units, binary, D-Bus and polkit
# files exactly as "meson install" lays them out).  verify checks that ExecStart=
# is an executable, so the verified copy of iommud.service points ExecStart= at
# the binary installed in that DESTDIR; nothing else in the units is changed, and
# everything else (sysinit.target, /bin/kill, dbus.socket) resolves on this host.
#
# Usage: verify-units.sh BUILD_DIR

set -euo pipefail

build=$1
command -v systemd-analyze >/dev/null || { echo "1..0 # SKIP no systemd-analyze"; exit 0; }

scratch=$(mktemp -d /tmp/iommud-units-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
destdir=$scratch/root
meson install -C "$build" --destdir "$destdir" --no-rebuild --quiet >/dev/null

service=$(find "$destdir" -path '*/systemd/system/iommud.service' | head -n 1)
socket=$(find "$destdir" -path '*/systemd/system/iommud.socket' | head -n 1)
[ -n "$service" ] && [ -n "$socket" ] || { echo "units not installed below $destdir" >&2; exit 1; }

mkdir "$scratch/units"
sed -e "s|^ExecStart=|ExecStart=$destdir|" "$service" > "$scratch/units/iommud.service"
cp "$socket" "$scratch/units/iommud.socket"
exec_start=$(sed -n 's/^ExecStart=//p' "$scratch/units/iommud.service")
[ -x "${exec_start%% *}" ] || { echo "ExecStart=$exec_start is not the installed binary" >&2; exit 1; }

echo "1..3"
out=$(systemd-analyze verify --man=no "$scratch/units/iommud.service" "$scratch/units/iommud.socket" 2>&1) &&
    [ -z "$out" ] && echo "ok 1 - systemd-analyze verify is silent" ||
    { echo "$out" | sed 's/^/# /'; echo "not ok 1 - systemd-analyze verify"; fail=1; }

out=$(systemd-analyze security --offline=true "$scratch/units/iommud.service" 2>&1 || true)
level=$(echo "$out" | sed -n 's/.*Overall exposure level for iommud.service: \([0-9.]*\).*/\1/p')
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
    echo "ok 2 - exposure $level is 2.0 or lower"
else
    echo "$out" | tail -n 20 | sed 's/^/# /'
    echo "not ok 2 - exposure ${level:-unknown} is above 2.0"
    fail=1
fi
policy=$(find "$destdir" -path '*/iommud/policy.d/*.json' | head -n 1)
limit() { sed -n "s/^[[:space:]]*\"$1\": *\([0-9]*\),*$/\1/p" "$policy" | head -n 1; }
conns=$(limit max-connections)
fds=$(limit max-fds-per-message)
nofile=$(sed -n 's/^LimitNOFILE=//p' "$service")
if [ -n "$conns" ] && [ -n "$fds" ] && [ -n "$nofile" ] && [ "$nofile" -ge $((conns * (fds + 4))) ]; then
    echo "ok 3 - LimitNOFILE=$nofile covers $conns connections with $fds fds per message"
else
    echo "not ok 3 - LimitNOFILE=${nofile:-unset} below max-connections ${conns:-?} × (${fds:-?} + 4)"
    fail=1
fi
exit ${fail:-0}
