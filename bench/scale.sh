#!/usr/bin/env bash
# Many pods on one node: N pods (default 200, one sleeping container each)
# applied at once. Prints the time until all run, the daemon's RSS, the
# CPU the daemon and the shims use while the pods sit idle, `get pods`
# latency, and the time to delete them all.
# Usage: bench/scale.sh [N]   (PEAPOD_PROFILE=debug for the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }

PROFILE=${PEAPOD_PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q; else cargo build -q; fi
P=$PWD/target/$PROFILE/peapod
scripts/build-test-images.sh target/test-images >/dev/null

D=$(mktemp -d /tmp/pps-XXXX)
# Runtime state on tmpfs, as /run/peapod is in production.
S=/run/peapod-bench-$$
export PEAPOD_SOCKET=$S/peapod.sock
RUST_LOG=${RUST_LOG:-warn} $P serve --root "$D/root" --state "$S" --cgroup-parent "peapod-scale-$$" --pod-max-pids 64 >"$D/daemon.log" 2>&1 &
DAEMON=$!
cleanup() {
    $P delete -f "$D/pods.yaml" --grace-period=0 >/dev/null 2>&1 || true
    kill "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/peapod-scale-$$; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    rm -rf "$D" "$S"
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$PEAPOD_SOCKET" ] && break; sleep 0.05; done
$P image import target/test-images/busybox.tar >/dev/null

for i in $(seq "$N"); do
    cat <<YAML
---
apiVersion: v1
kind: Pod
metadata: {name: s$i}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: localhost/peapod/busybox:latest, imagePullPolicy: IfNotPresent, command: [sleep, "36000"]}
YAML
done > "$D/pods.yaml"

now() { date +%s%N; }
running() { $P get pods 2>/dev/null | tail -n +2 | awk '$3=="Running"' | wc -l; }
t0=$(now)
$P apply -f "$D/pods.yaml" >/dev/null
until [ "$(running)" -ge "$N" ]; do sleep 0.2; done
t1=$(now)
echo "peapod: $N pods applied at once -> all Running: $(( (t1 - t0) / 1000000 )) ms"

sleep 3
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON/status")
echo "peapod: daemon RSS with $N pods: $((rss / 1024)) MiB"

ticks() {
    local sum=0
    for pid in "$DAEMON" $(pgrep -f "shim --dir $S/"); do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}
hz=$(getconf CLK_TCK)
a=$(ticks); sleep 20; b=$(ticks)
echo "peapod: idle CPU (daemon + $N shims, 20 s): $(awk -v d=$((b - a)) -v hz="$hz" 'BEGIN {printf "%.2f", 100 * d / hz / 20}') % of a core"

lat=()
for _ in $(seq 10); do
    s=$(now); $P get pods >/dev/null; e=$(now)
    lat+=("$(( (e - s) / 1000000 ))")
done
echo "peapod: get pods over $N pods, median of 10: $(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms"

t0=$(now)
$P delete -f "$D/pods.yaml" --grace-period=0 --timeout 1200s >/dev/null
until [ "$($P get pods 2>/dev/null | tail -n +2 | wc -l)" -eq 0 ]; do sleep 0.1; done
t1=$(now)
echo "peapod: delete all $N pods: $(( (t1 - t0) / 1000000 )) ms"
