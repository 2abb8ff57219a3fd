#!/usr/bin/env bash
# Pod start time and per-pod memory.
#
# 1. apply -> Ready (all containers running), for a pod with one init
#    container and two app containers, image present: median (and p90) of
#    RUNS (20) runs, read by `peapod wait --for=condition=Ready` (a watch);
#    and delete -> gone for the same pods.
#    Pods get their IP from CNI (peapod's default network configuration,
#    on a bridge of the bench's own, ppbench0, 10.86.0.0/16).
# 2. Processes per pod besides its containers, and their PSS, with 10 pods
#    running (a pod without shareProcessNamespace has only its shim).
# Beside it, podman's figures (podman kube play, with the same images) when
# podman is installed. Usage: bench/pod-start.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }

# PEAPOD_PROFILE=debug measures the debug build (quicker to build).
PROFILE=${PEAPOD_PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q; else cargo build -q; fi
P=$PWD/target/$PROFILE/peapod
scripts/build-test-images.sh target/test-images >/dev/null

D=$(mktemp -d /tmp/ppb-XXXX)
# Runtime state on tmpfs, as /run/peapod is in production.
S=/run/peapod-bench-$$
export PEAPOD_SOCKET=$S/peapod.sock
mkdir -p "$D/etc/net.d"
cat > "$D/etc/net.d/10-bench.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "ppbench", "plugins": [
  {"type": "loopback"},
  {"type": "bridge", "bridge": "ppbench0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.86.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}
JSON
RUST_LOG=${RUST_LOG:-info} $P serve --root "$D/root" --state "$S" --cgroup-parent "peapod-bench-$$" --config-dir "$D/etc" --nft-table "ppbench$$" >"$D/daemon.log" 2>&1 &
DAEMON=$!
cleanup() {
    for p in $($P get pods -o name 2>/dev/null); do $P delete "$p" --grace-period=0 >/dev/null 2>&1 || true; done
    kill "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/peapod-bench-$$; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    ip link del ppbench0 2>/dev/null || true
    for t in "ppbench$$" "ppbench$$-egress"; do nft delete table ip "$t" 2>/dev/null || true; done
    [ -n "${BENCH_KEEP:-}" ] && cp "$D/daemon.log" /tmp/bench-daemon.log
    rm -rf "$D" "$S"
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$PEAPOD_SOCKET" ] && break; sleep 0.05; done
$P image import target/test-images/busybox.tar >/dev/null
$P image import target/test-images/httpd.tar >/dev/null

manifest() {
cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 0
  initContainers:
  - {name: init, image: localhost/peapod/busybox:latest, imagePullPolicy: IfNotPresent, command: ["true"]}
  containers:
  - {name: web, image: localhost/peapod/httpd:latest, imagePullPolicy: IfNotPresent}
  - {name: side, image: localhost/peapod/busybox:latest, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
YAML
}

ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p90() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.9); if (i<1) i=1; printf "%.1f", a[i]}'; }

times=()
dtimes=()
for i in $(seq "$RUNS"); do
    manifest "b$i" > "$D/m.yaml"
    t0=$(ms)
    $P apply -f "$D/m.yaml" >/dev/null 2>&1
    # Ready (both containers running: the pod has no probes), seen through
    # a watch as kubectl wait sees it; no polling loop competing for the
    # two cores.
    $P wait --for=condition=Ready "pod/b$i" --timeout=30s >/dev/null
    t1=$(ms)
    times+=("$(( (t1 - t0) / 100000 ))")
    [ -n "${BENCH_VERBOSE:-}" ] && echo "run $i: $(( (t1 - t0) / 1000000 )) ms" >&2
    t0=$(ms)
    $P delete pod "b$i" --grace-period=0 >/dev/null
    t1=$(ms)
    dtimes+=("$(( (t1 - t0) / 100000 ))")
done
start_med=$(printf '%s\n' "${times[@]}" | awk '{print $1/10}' | median)
start_p90=$(printf '%s\n' "${times[@]}" | awk '{print $1/10}' | p90)

for i in $(seq 10); do manifest "m$i" | $P apply -f - >/dev/null 2>&1; done
for i in $(seq 10); do
    until $P get pod "m$i" 2>/dev/null | awk 'NR==2 {exit !($2=="2/2" && $3=="Running")}'; do sleep 0.05; done
done
pss() { awk '/^Pss:/ {s+=$2} END {print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# Every process in this daemon's cgroup tree that is not a container's:
# shims (shim-<sandbox>) and infra processes (named by the sandbox id).
per_pod_kb=0; per_pod_n=0
for pid in $(pgrep -f "shim --dir $S/"); do per_pod_kb=$((per_pod_kb + $(pss "$pid"))); per_pod_n=$((per_pod_n + 1)); done
for pid in $(pgrep -x -f "peapod infra"); do
    # only this daemon's infra processes: their cgroup is under our parent
    if grep -q "peapod-bench-$$" "/proc/$pid/cgroup" 2>/dev/null; then
        per_pod_kb=$((per_pod_kb + $(pss "$pid"))); per_pod_n=$((per_pod_n + 1))
    fi
done

echo "peapod: apply -> Ready (init + 2 containers), median of $RUNS: ${start_med} ms (p90 ${start_p90} ms)"
echo "peapod: delete (until gone), median of $RUNS: $(printf '%s\n' "${dtimes[@]}" | awk '{print $1/10}' | median) ms (p90 $(printf '%s\n' "${dtimes[@]}" | awk '{print $1/10}' | p90) ms)"
echo "peapod: per pod with 10 pods: $(awk -v n=$per_pod_n 'BEGIN {printf "%.1f", n/10}') processes besides its containers, PSS $((per_pod_kb / 10)) KiB"

if command -v podman >/dev/null; then
    eval "$(../shared/peers/podman-env.sh 2>/dev/null || /work/shared/peers/podman-env.sh)"
    for img in busybox httpd; do podman load -q -i "oci-archive:target/test-images/$img.tar" >/dev/null 2>&1 || podman load -q -i "target/test-images/$img.tar" >/dev/null; done
    ptimes=()
    for i in $(seq "$RUNS"); do
        manifest "q$i" > "$D/q.yaml"
        t0=$(ms)
        podman kube play "$D/q.yaml" >/dev/null 2>&1
        until [ "$(podman pod inspect "q$i" --format '{{.State}}' 2>/dev/null)" = "Running" ]; do sleep 0.005; done
        t1=$(ms)
        ptimes+=("$(( (t1 - t0) / 100000 ))")
        podman kube down "$D/q.yaml" >/dev/null 2>&1 || podman pod rm -f "q$i" >/dev/null 2>&1
    done
    echo "podman: kube play -> running, median of $RUNS: $(printf '%s\n' "${ptimes[@]}" | awk '{print $1/10}' | median) ms (p90 $(printf '%s\n' "${ptimes[@]}" | awk '{print $1/10}' | p90) ms)"
    for i in $(seq 10); do manifest "r$i" > "$D/r$i.yaml"; podman kube play "$D/r$i.yaml" >/dev/null 2>&1; done
    conmon_kb=0; pause_kb=0
    for pid in $(pgrep -x conmon); do conmon_kb=$((conmon_kb + $(pss "$pid"))); done
    for pid in $(pgrep -f catatonit); do pause_kb=$((pause_kb + $(pss "$pid"))); done
    n_conmon=$(pgrep -x conmon | wc -l); n_pause=$(pgrep -f catatonit | wc -l)
    echo "podman: per pod with 10 pods: $(awk -v n=$((n_conmon + n_pause)) 'BEGIN {printf "%.1f", n/10}') processes besides its containers (conmon + infra), PSS $(((conmon_kb + pause_kb) / 10)) KiB"
    for i in $(seq 10); do podman kube down "$D/r$i.yaml" >/dev/null 2>&1 || true; done
else
    echo "podman: not installed (apt-get install podman conmon runc catatonit netavark to compare)"
fi
