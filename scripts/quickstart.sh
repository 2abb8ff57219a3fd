#!/usr/bin/env bash
# Quick start: build peapod, build the test images from Debian's
# busybox-static (no internet needed), start the daemon, run the example
# two-container pod and show it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: peapod needs root (namespaces, mounts, cgroups)" >&2
    exit 1
fi
if ! [ -x /bin/busybox ] || ! command -v gcc >/dev/null || ! command -v protoc >/dev/null \
    || ! [ -x /usr/lib/cni/bridge ] || ! command -v nft >/dev/null; then
    apt-get install -y -qq busybox-static gcc libc6-dev libseccomp-dev pkg-config \
        protobuf-compiler containernetworking-plugins nftables iproute2 >/dev/null
fi

cargo build --release
PEAPOD=target/release/peapod
scripts/build-test-images.sh target/test-images

export PEAPOD_SOCKET=/run/peapod/peapod.sock
if ! [ -S "$PEAPOD_SOCKET" ] || ! $PEAPOD get pods >/dev/null 2>&1; then
    mkdir -p /var/log
    nohup $PEAPOD serve >/var/log/peapod.log 2>&1 &
    for _ in $(seq 100); do [ -S "$PEAPOD_SOCKET" ] && break; sleep 0.1; done
fi

$PEAPOD image import target/test-images/busybox.tar
$PEAPOD image import target/test-images/httpd.tar
$PEAPOD images
$PEAPOD apply -f examples/two-containers.yaml
$PEAPOD wait --for=condition=Ready pod/hello --timeout=60s
sleep 2
$PEAPOD get pods
echo
$PEAPOD inspect pod hello
echo
$PEAPOD logs hello -c client
echo
echo "Try: $PEAPOD exec -it hello -c client -- sh     (daemon log: /var/log/peapod.log)"
echo "Clean up: $PEAPOD delete pod hello"
