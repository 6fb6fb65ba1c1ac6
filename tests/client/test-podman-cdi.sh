#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# podman (4.3, Debian 12) reads the specs "iommuctl cdi generate" writes, in each mode, and
# resolves iommud.org/vfio=ADDRESS into the container's OCI config.  iommud runs on the
# simulated workstation host with a policy that grants root its eligible device with
# "delegation"; the specs go to /run/cdi, where podman looks, but in a mount namespace of this
# test's own (a tmpfs over /run/cdi and /etc/cdi: nothing of the host's is read or changed),
# and podman keeps its storage in a temporary directory.
#
# Checked from the OCI config podman writes for the container ("podman init"): broker mode
# gives $IOMMUD_SOCKET, the socket bind-mounted at that path from iommud's, and
# $IOMMUD_DEVICE_<address>, and no VFIO node; iommufd and legacy mode give their device nodes
# (/dev/iommu and the cdev; /dev/vfio/vfio and the group), or, where the host has no such
# node, podman's refusal naming one of them; an unknown device name is unresolvable.  A runtime
# claim (iommuctl claim prepare, the spec iommud itself writes) resolves as
# iommud.org/claim=ID to the same nodes, and no longer once the claim is unprepared.  The
# container does not have to start: on a host where crun cannot start one, the config is
# written before that fails.
#
#   test-podman-cdi.sh IOMMUD IOMMUCTL TOPOLOGY_DIR
#
# TAP on stdout; "1..0 # SKIP" without podman, root or unshare.

set -uo pipefail

iommud=$1
iommuctl=$2
export IOMMUD_TOPOLOGY_DIR=$3
device=0000:01:00.0

skip() { echo "1..0 # SKIP $*"; exit 0; }
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman)"
[ "$(id -u)" = 0 ] || skip "podman reads the CDI specs of /run/cdi as root only"
command -v unshare >/dev/null || skip "unshare is missing"
unshare -m true 2>/dev/null || skip "no mount namespace may be made here"

if [ -z "${IOMMUD_PODMAN_INNER:-}" ]; then
        # In a mount namespace of its own, so that the tmpfs over the CDI directories is ours.
        export IOMMUD_PODMAN_INNER=1
        mkdir -p /run/cdi /etc/cdi
        exec unshare -m --propagation private "$0" "$@"
fi

tmp=$(mktemp -d /tmp/iommud-podman.XXXXXX)
daemon=
P=()
cleanup() {
        [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
        # podman's containers hold a shm mount each (in this namespace only).
        [ -n "${P[*]:-}" ] && "${P[@]}" rm -a -f >/dev/null 2>&1
        grep -o " $tmp/[^ ]*" /proc/self/mounts | xargs -r -n 1 umount 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
mount -t tmpfs tmpfs /run/cdi
mount -t tmpfs tmpfs /etc/cdi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; failed=1; }
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }

mkdir -p "$tmp/empty" "$tmp/rt"
cat >"$tmp/policy.json" <<EOF
{
  "rules": { "all": { "action": "allow", "match": "*" } },
  "grants": { "root": { "principals": [ { "user": 0 } ], "devices": "*", "delegation": true } }
}
EOF
socket=$tmp/rt/org.iommud.Broker
"$iommud" --sim workstation --runtime-dir "$tmp/rt" --socket "$socket" --no-bus --cdi-dir /run/cdi \
        --policy "$tmp/policy.json" --policy-dir "$tmp/empty" --vendor-policy-dir "$tmp/empty" \
        --log-level warning 2>"$tmp/iommud.log" &
daemon=$!
for _ in $(seq 100); do
        [ -S "$socket" ] && break
        sleep 0.1
done
export IOMMUD_SOCKET=$socket
echo "# $(podman --version)"

# A one-program image, built here: nothing is pulled.
mkdir -p "$tmp/rootfs/bin"
cp /bin/busybox "$tmp/rootfs/bin/" 2>/dev/null || cp "$(command -v true)" "$tmp/rootfs/bin/busybox"
tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
P=(podman --root "$tmp/storage" --runroot "$tmp/run" --tmpdir "$tmp/libpod"
   --storage-driver vfs --cgroup-manager cgroupfs --events-backend none)
"${P[@]}" import -q "$tmp/rootfs.tar" localhost/iommud-cdi-test:1 >/dev/null
check $? "a local image to create containers from"

# create_init NAME [KIND]: creates a container with device KIND=NAME (KIND iommud.org/vfio by
# default) and has podman write its OCI config; prints the config's path, or podman's last
# error line on stderr.
create_init() {
        local id err
        id=$("${P[@]}" create --network none --device "${2:-iommud.org/vfio}=$1" \
                localhost/iommud-cdi-test:1 /bin/busybox true 2>"$tmp/err") || {
                tail -n 1 "$tmp/err" >&2
                return 1
        }
        err=$("${P[@]}" init "$id" 2>&1)
        if [ -f "$tmp/storage/vfs-containers/$id/userdata/config.json" ]; then
                echo "$tmp/storage/vfs-containers/$id/userdata/config.json"
                return 0
        fi
        echo "$err" | tail -n 1 >&2
        return 1
}

# What the container's config holds that CDI put there, one fact a line.
config_facts() {
        python3 - "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
for e in c["process"].get("env", []):
    if e.startswith("IOMMUD_"):
        print("env " + e)
for m in c.get("mounts", []):
    if "iommud" in m["destination"]:
        print("mount %s %s" % (m["source"], m["destination"]))
for d in c["linux"].get("devices") or []:
    if d["path"].startswith("/dev/vfio") or d["path"] == "/dev/iommu":
        print("node " + d["path"])
EOF
}

var=IOMMUD_DEVICE_${device//[:.]/_}=$device

# broker: the socket and the variables, no node.
"$iommuctl" cdi generate --mode broker --output /run/cdi >/dev/null
check $? "iommuctl cdi generate --mode broker writes /run/cdi/iommud.org-vfio.json"
if config=$(create_init "$device" 2>"$tmp/why"); then
        facts=$(config_facts "$config")
        want=$(printf 'env IOMMUD_SOCKET=/run/iommud/org.iommud.Broker\nenv %s\nmount %s %s' \
                "$var" "$socket" /run/iommud/org.iommud.Broker)
        check "$([ "$(echo "$facts" | sort)" = "$(echo "$want" | sort)" ]; echo $?)" \
                "broker: podman resolved iommud.org/vfio=$device to the socket and the variables: $(echo $facts)"
else
        not_ok "broker: podman resolved iommud.org/vfio=$device: $(cat "$tmp/why")"
fi

# resolves WHAT SPEC NAME [KIND]: podman gave the container the nodes SPEC lists for its device
# NAME, or the host has not got one and podman says which.
resolves() {
        local nodes config got why missing
        nodes=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
d = [x for x in s["devices"] if x["name"] == sys.argv[2]][0]
for e in (s["containerEdits"], d["containerEdits"]):
    for n in e.get("deviceNodes", []):
        print(n["path"])' "$2" "$3")
        if config=$(create_init "$3" "${4:-}" 2>"$tmp/why"); then
                got=$(config_facts "$config" | awk '$1 == "node" { print $2 }' | sort)
                check "$([ "$got" = "$(echo "$nodes" | sort)" ]; echo $?)" \
                        "$1: podman gave the container $(echo $got)"
        else
                why=$(cat "$tmp/why")
                missing=$(echo "$why" | sed -n 's/.*failed to stat CDI host device "\([^"]*\)".*/\1/p')
                check "$([ -n "$missing" ] && [ ! -e "$missing" ] &&
                         echo "$nodes" | grep -qx "$missing"; echo $?)" \
                        "$1: podman resolved the device and wants its node $missing, which this host has not: $why"
        fi
}

# iommufd and legacy: their nodes, or the host has not got them and podman says which.
for mode in iommufd legacy; do
        "$iommuctl" cdi generate --mode "$mode" --output /run/cdi >/dev/null
        check $? "iommuctl cdi generate --mode $mode"
        resolves "$mode" /run/cdi/iommud.org-vfio.json "$device"
done

# A runtime claim: iommud writes its spec, podman resolves iommud.org/claim=ID, and once the
# claim is released the name is gone.
"$iommuctl" claim prepare pod-1 --device "$device" --uid 0 >/dev/null
check $? "iommuctl claim prepare writes /run/cdi/iommud-claim-pod-1.json"
resolves "claim" /run/cdi/iommud-claim-pod-1.json pod-1 iommud.org/claim
"$iommuctl" claim unprepare pod-1 >/dev/null
check $? "iommuctl claim unprepare"
err=$(create_init pod-1 iommud.org/claim 2>&1 >/dev/null)
check "$(echo "$err" | grep -q 'unresolvable CDI devices iommud.org/claim=pod-1'; echo $?)" \
        "an unprepared claim is unresolvable: $err"

err=$(create_init nonexistent 2>&1 >/dev/null)
check "$(echo "$err" | grep -q 'unresolvable CDI devices iommud.org/vfio=nonexistent'; echo $?)" \
        "an unknown name is unresolvable: $err"

echo "1..$n"
exit $failed
