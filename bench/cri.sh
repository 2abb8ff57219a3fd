#!/usr/bin/env bash
# CRI pod start: crictl runp + create + start of a busybox container (image
# present), median (and p90) of RUNS (20) runs, against a fresh
# `peapod serve` (release build) on its CRI socket; beside it containerd's
# figure when containerd is installed (its own root/state/socket, the same
# CNI configuration, the same image imported into its k8s.io namespace).
# Usage: bench/cri.sh [RUNS]. Needs root and crictl (../shared/cri/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
CRICTL=${CRICTL:-/var/tmp/critools/bin/crictl}
[ -x "$CRICTL" ] || { echo "no crictl at $CRICTL (../shared/cri/build.sh)" >&2; exit 2; }
PROFILE=${PEAPOD_PROFILE:-release}
if [ "$PROFILE" = release ]; then nice -n 10 cargo build --release -q -p peapod; else nice -n 10 cargo build -q -p peapod; fi
P=$PWD/target/$PROFILE/peapod
scripts/build-test-images.sh target/test-images >/dev/null
IMAGE=localhost/peapod/busybox:test

D=$(mktemp -d /tmp/ppcrib-XXXX)
S=/run/peapod-cribench-$$
CG=peapod-cribench-$$
mkdir -p "$D/etc/net.d" "$D/logs"
cat > "$D/etc/net.d/10-cribench.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "ppcrib", "plugins": [
  {"type": "loopback"},
  {"type": "bridge", "bridge": "ppcrib0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}
JSON
cat > "$D/pod.json" <<JSON
{"metadata": {"name": "bench", "namespace": "default", "uid": "UID"}, "log_directory": "$D/logs"}
JSON
cat > "$D/ctr.json" <<JSON
{"metadata": {"name": "app"}, "image": {"image": "$IMAGE"}, "command": ["sleep", "3600"], "log_path": "app.log"}
JSON
CTRD_PID=
cleanup() {
    set +e
    for sock in "$S/cri.sock" "$D/containerd/containerd.sock"; do
        [ -S "$sock" ] || continue
        for p in $("$CRICTL" -r "unix://$sock" pods -q 2>/dev/null); do
            "$CRICTL" -r "unix://$sock" stopp "$p" >/dev/null 2>&1
            "$CRICTL" -r "unix://$sock" rmp -f "$p" >/dev/null 2>&1
        done
    done
    [ -n "${DAEMON:-}" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    [ -n "$CTRD_PID" ] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
    for c in /sys/fs/cgroup/*/"$CG"; do
        [ -d "$c" ] || continue
        find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    sleep 0.3
    for c in /sys/fs/cgroup/*/"$CG"; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    grep -oE " ($D|$S)[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ip link del ppcrib0 2>/dev/null
    nft delete table ip ppcrib 2>/dev/null
    rm -rf "$D" "$S"
}
trap cleanup EXIT

# measure SOCK NAME: RUNS x (runp + create + start), each pod removed after.
measure() {
    local sock=$1 name=$2 times=() i t0 t1 sid cid
    local C=("$CRICTL" -r "unix://$sock" -i "unix://$sock")
    for i in $(seq "$RUNS"); do
        sed "s/UID/uid-$i-$$/" "$D/pod.json" > "$D/pod-$i.json"
        t0=$(date +%s%N)
        sid=$("${C[@]}" runp "$D/pod-$i.json")
        cid=$("${C[@]}" create "$sid" "$D/ctr.json" "$D/pod-$i.json")
        "${C[@]}" start "$cid" >/dev/null
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
        "${C[@]}" stopp "$sid" >/dev/null
        "${C[@]}" rmp "$sid" >/dev/null
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v n="$RUNS" '
        { v[NR] = $1 }
        END { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2;
              p = v[int(n * 0.9 + 0.999)];
              printf "%-12s runp+create+start  median %5.0f ms  p90 %5d ms  (%d runs)\n", name, m, p, n }'
}

RUST_LOG=warn "$P" serve --root "$D/root" --state "$S" --cgroup-parent "$CG" \
    --config-dir "$D/etc" --nft-table ppcrib >"$D/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 400); do [ -S "$S/cri.sock" ] && break; sleep 0.05; done
PEAPOD_SOCKET=$S/peapod.sock "$P" image import target/test-images/busybox.tar --name "$IMAGE" >/dev/null
measure "$S/cri.sock" peapod

if command -v containerd >/dev/null && command -v ctr >/dev/null; then
    mkdir -p "$D/containerd"
    cat > "$D/containerd/config.toml" <<TOML
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/etc/net.d"
TOML
    containerd --config "$D/containerd/config.toml" >"$D/containerd.log" 2>&1 &
    CTRD_PID=$!
    for _ in $(seq 400); do [ -S "$D/containerd/containerd.sock" ] && break; sleep 0.05; done
    ctr -a "$D/containerd/containerd.sock" -n k8s.io images import --base-name localhost/peapod/busybox \
        target/test-images/busybox.tar >/dev/null
    ctr -a "$D/containerd/containerd.sock" -n k8s.io images tag --force \
        "$(ctr -a "$D/containerd/containerd.sock" -n k8s.io images ls -q | grep busybox | head -1)" "$IMAGE" >/dev/null 2>&1 || true
    measure "$D/containerd/containerd.sock" containerd
else
    echo "containerd: not installed (apt-get install containerd) - no comparison"
fi
