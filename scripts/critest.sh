#!/usr/bin/env bash
# Run the Kubernetes CRI validation suite (critest v1.29.0) against a fresh
# `peapod serve`: its own --root/--state/--cgroup-parent, its own pod network
# (bridge ppcri0, 10.87.0.0/16) and a registries.toml that sends
# registry.k8s.io, gcr.io and 127.0.0.1:5077 to the local registry at
# http://127.0.0.1:5077 with no fallback to the public hosts.
#
# Usage: scripts/critest.sh [critest args, e.g. --ginkgo.focus='Security Context']
# Needs: root, critest/crictl built by ../shared/cri/build.sh (SHARED_CRI points
# at that folder; default /work/shared/cri), images served by its images.sh.
# Results: /var/tmp/critools/results/latest/summary.txt (see run.sh).
# PEAPOD_PROFILE=release|debug (default debug) picks the binary; KEEP=1 keeps
# the daemon's directory for a look at its log.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "critest.sh: needs root" >&2; exit 1; }
SHARED_CRI=${SHARED_CRI:-/work/shared/cri}
[ -x "$SHARED_CRI/run.sh" ] || { echo "critest.sh: no $SHARED_CRI/run.sh (set SHARED_CRI)" >&2; exit 2; }
PROFILE=${PEAPOD_PROFILE:-debug}
if [ "$PROFILE" = release ]; then nice -n 10 cargo build --release -q -p peapod; else nice -n 10 cargo build -q -p peapod; fi
P=$PWD/target/$PROFILE/peapod
CRICTL=${CRICTL:-/var/tmp/critools/bin/crictl}

D=$(mktemp -d /tmp/ppcri-XXXX)
S=/run/peapod-critest-$$
CG=peapod-critest-$$
SOCK=$S/cri.sock
mkdir -p "$D/etc/net.d"
cat > "$D/etc/net.d/10-critest.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "ppcri", "plugins": [
  {"type": "loopback"},
  {"type": "bridge", "bridge": "ppcri0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.87.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}
JSON
cat > "$D/etc/registries.toml" <<'TOML'
[registry."registry.k8s.io"]
mirrors = ["http://127.0.0.1:5077"]
skip_upstream = true

[registry."gcr.io"]
mirrors = ["http://127.0.0.1:5077"]
skip_upstream = true

[registry."127.0.0.1:5077"]
mirrors = ["http://127.0.0.1:5077"]
skip_upstream = true
TOML

RUST_LOG=${RUST_LOG:-info,libcgroups=error} "$P" serve --root "$D/root" --state "$S" \
    --cgroup-parent "$CG" --config-dir "$D/etc" --nft-table ppcri >"$D/daemon.log" 2>&1 &
DAEMON=$!
# critest's mount-propagation specs leave /tmp/test<pod id>/ (and a bind
# mount in it) behind when they fail: what appears during the run goes.
BEFORE=$(ls -d /tmp/test* 2>/dev/null || true)
cleanup() {
    set +e
    for t in $(ls -d /tmp/test* 2>/dev/null); do
        grep -qxF "$t" <<<"$BEFORE" && continue
        grep -oE " $t/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
        rm -rf "$t"
    done
    if [ -S "$SOCK" ]; then
        # What critest left behind (a failed spec may skip its clean-up).
        for p in $("$CRICTL" -r "unix://$SOCK" pods -q 2>/dev/null); do
            "$CRICTL" -r "unix://$SOCK" stopp "$p" >/dev/null 2>&1
            "$CRICTL" -r "unix://$SOCK" rmp -f "$p" >/dev/null 2>&1
        done
    fi
    kill "$DAEMON" 2>/dev/null
    wait "$DAEMON" 2>/dev/null
    # Processes still in the run's cgroups (shims of sandboxes not removed).
    for c in /sys/fs/cgroup/*/"$CG"; do
        [ -d "$c" ] || continue
        find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    sleep 0.5
    for c in /sys/fs/cgroup/*/"$CG"; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    # Mounts under the run's directories (rootfs, pinned namespaces, shm).
    grep -oE " ($D|$S)[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ip link del ppcri0 2>/dev/null
    nft delete table ip ppcri 2>/dev/null
    if [ -n "${KEEP:-}" ]; then echo "critest.sh: kept $D (daemon.log)" >&2; else rm -rf "$D"; fi
    rm -rf "$S"
}
trap cleanup EXIT
for _ in $(seq 400); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "critest.sh: the daemon did not open $SOCK:" >&2; tail -20 "$D/daemon.log" >&2; exit 1; }
set +e
"$SHARED_CRI/run.sh" "unix://$SOCK" "$@"
rc=$?
set -e
cp "$D/daemon.log" /var/tmp/critools/results/latest/peapod-daemon.log 2>/dev/null || true
head -1 /var/tmp/critools/results/latest/summary.txt 2>/dev/null || true
exit $rc
