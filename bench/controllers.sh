#!/usr/bin/env bash
# Workload controllers: a Deployment scaled from 0 to N replicas (default
# 100; time until all are Ready), a rolling update of R replicas (default
# 20; time until `rollout status` says it is done), and the daemon's CPU
# while the N pods sit idle.
# Usage: bench/controllers.sh [N] [R]   (PEAPOD_PROFILE=debug for the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
R=${2:-20}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }

PROFILE=${PEAPOD_PROFILE:-release}
if [ "$PROFILE" = release ]; then nice -n 10 cargo build --release -q -p peapod; else nice -n 10 cargo build -q -p peapod; fi
P=$PWD/target/$PROFILE/peapod
[ -f target/test-images/busybox.tar ] || scripts/build-test-images.sh target/test-images >/dev/null

D=$(mktemp -d /tmp/ppc-XXXX)
S=/run/peapod-bench-ctl-$$
export PEAPOD_SOCKET=$S/peapod.sock
RUST_LOG=${RUST_LOG:-warn} $P serve --root "$D/root" --state "$S" --config-dir "$D/etc" \
    --cgroup-parent "peapod-ctl-$$" --nft-table "ppctl$$" --pod-max-pids 64 ${PEAPOD_SERVE_ARGS:-} >"$D/daemon.log" 2>&1 &
DAEMON=$!
cleanup() {
    $P delete deploy idle roll --cascade=foreground --timeout 600s >/dev/null 2>&1 || true
    kill "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/peapod-ctl-$$; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    rm -rf "$D" "$S"
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$PEAPOD_SOCKET" ] && break; sleep 0.05; done
$P image import target/test-images/busybox.tar >/dev/null

deployment() { # name replicas tag
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: c, image: localhost/peapod/busybox:latest, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo $3; exec sleep 36000"]}
YAML
}

now() { date +%s%N; }
ready() { $P get deploy "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",{}).get("readyReplicas",0))'; }

deployment idle 0 v1 >"$D/idle.yaml"
$P apply -f "$D/idle.yaml" >/dev/null
t0=$(now)
$P scale deploy/idle --replicas="$N" >/dev/null
until [ "$(ready idle)" -ge "$N" ]; do sleep 0.1; done
t1=$(now)
echo "peapod: Deployment scaled 0 -> $N replicas, all Ready: $(( (t1 - t0) / 1000000 )) ms"

sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$DAEMON/stat"; }
hz=$(getconf CLK_TCK)
a=$(ticks); sleep 20; b=$(ticks)
echo "peapod: daemon CPU with $N idle pods of a Deployment (20 s): $(awk -v d=$((b - a)) -v hz="$hz" 'BEGIN {printf "%.2f", 100 * d / hz / 20}') % of a core"

$P delete deploy idle --cascade=foreground --timeout 600s >/dev/null

deployment roll "$R" v1 >"$D/roll.yaml"
$P apply -f "$D/roll.yaml" >/dev/null
$P rollout status deploy/roll --timeout 300s >/dev/null
deployment roll "$R" v2 >"$D/roll.yaml"
t0=$(now)
$P apply -f "$D/roll.yaml" >/dev/null
$P rollout status deploy/roll --timeout 600s >/dev/null
t1=$(now)
echo "peapod: rolling update of $R replicas (25% surge / 25% unavailable) complete: $(( (t1 - t0) / 1000000 )) ms"
