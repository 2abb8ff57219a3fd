#!/usr/bin/env bash
# Pod network throughput in HTTP requests per second: a client pod runs
# REQS (500) sequential busybox `wget`s of a small page served by busybox
# httpd in another pod, four ways:
#   loopback   - the client loop inside the server pod, to 127.0.0.1
#   pod IP     - client pod -> server pod over the CNI bridge
#   ClusterIP  - the same through a Service (peapod's nftables DNAT)
#   DNS name   - through the Service by name (one cluster DNS lookup per
#                request: busybox wget resolves every time)
# Each is the best of TRIES (3). Every request is a new process and a new
# TCP connection, so the figures are per-connection costs (fork + exec +
# connect + one HTTP exchange), not bandwidth.
# Usage: bench/pod-net.sh [REQS] [TRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${1:-500}
TRIES=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }

PROFILE=${PEAPOD_PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q -p peapod; else cargo build -q -p peapod; fi
P=$PWD/target/$PROFILE/peapod
scripts/build-test-images.sh target/test-images >/dev/null

D=$(mktemp -d /tmp/ppn-XXXX)
S=/run/peapod-netbench-$$
export PEAPOD_SOCKET=$S/peapod.sock
mkdir -p "$D/etc/net.d"
cat > "$D/etc/net.d/10-netbench.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "ppnetbench", "plugins": [
  {"type": "loopback"},
  {"type": "bridge", "bridge": "ppnetb0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.87.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}
JSON
$P serve --root "$D/root" --state "$S" --cgroup-parent "peapod-netbench-$$" --config-dir "$D/etc" \
    --service-cidr 10.97.0.0/24 --nft-table ppnetbench >"$D/daemon.log" 2>&1 &
DAEMON=$!
cleanup() {
    $P delete svc web >/dev/null 2>&1 || true
    for p in $($P get pods -o name 2>/dev/null); do $P delete "$p" --grace-period=0 >/dev/null 2>&1 || true; done
    kill "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/peapod-netbench-$$; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    nft delete table ip ppnetbench 2>/dev/null || true
    ip link del ppnetb0 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] && cp "$D/daemon.log" /tmp/netbench-daemon.log
    rm -rf "$D" "$S"
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$PEAPOD_SOCKET" ] && break; sleep 0.05; done
$P image import target/test-images/busybox.tar >/dev/null
$P image import target/test-images/httpd.tar >/dev/null

$P apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: localhost/peapod/httpd:latest
    imagePullPolicy: IfNotPresent
    command: [httpd, -f, -p, "8080", -h, /www]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: localhost/peapod/busybox:latest, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
YAML
for p in server client; do
    until $P get pod "$p" 2>/dev/null | awk 'NR==2 {exit !($2=="1/1" && $3=="Running")}'; do sleep 0.05; done
done
POD_IP=$($P get pod server -o json | sed -n 's/.*"podIP": *"\([^"]*\)".*/\1/p' | head -1)
CLUSTER_IP=$($P get svc web -o json | sed -n 's/.*"clusterIP": *"\([^"]*\)".*/\1/p' | head -1)

ms() { date +%s%N; }
# once POD CONTAINER URL: requests/s of one loop of REQS requests.
once() {
    local t0 t1
    t0=$(ms)
    $P exec "$1" -c "$2" -- sh -c "i=0; while [ \$i -lt $REQS ]; do wget -q -O /dev/null $3 || exit 1; i=\$((i+1)); done"
    t1=$(ms)
    awk -v n="$REQS" -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (ns / 1e9)}'
}
WAYS=("server web http://127.0.0.1:8080/healthz"
      "client c http://$POD_IP:8080/healthz"
      "client c http://$CLUSTER_IP/healthz"
      "client c http://web/healthz")
# The Service's endpoint may take a moment after the pod runs.
for w in "${WAYS[@]}"; do
    set -- $w
    until $P exec "$1" -c "$2" -- wget -q -O /dev/null "$3" 2>/dev/null; do sleep 0.1; done
done
# The ways take turns (the machine's load drifts); best of TRIES each.
best=(0 0 0 0)
for _ in $(seq "$TRIES"); do
    for k in 0 1 2 3; do
        set -- ${WAYS[$k]}
        r=$(once "$1" "$2" "$3")
        [ "$r" -gt "${best[$k]}" ] && best[$k]=$r
    done
done
loop=${best[0]} direct=${best[1]} cluster=${best[2]} byname=${best[3]}
echo "peapod pod-net: $REQS sequential busybox wget requests, best of $TRIES (requests/s):"
echo "  loopback in the server pod       $loop"
echo "  pod -> pod IP over the bridge    $direct  ($(awk -v a="$direct" -v b="$loop" 'BEGIN {printf "%.0f", 100*a/b}')% of loopback)"
echo "  pod -> ClusterIP (nftables DNAT) $cluster  ($(awk -v a="$cluster" -v b="$direct" 'BEGIN {printf "%.0f", 100*a/b}')% of direct pod IP)"
echo "  pod -> Service by DNS name       $byname  ($(awk -v a="$byname" -v b="$cluster" 'BEGIN {printf "%.0f", 100*a/b}')% of ClusterIP)"
