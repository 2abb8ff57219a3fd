#!/usr/bin/env bash
# Pull + unpack of a ~100 MB multi-layer image from a local registry:
# peapod's puller (crates/image/examples/pull.rs, release build) against
# `skopeo copy docker://… dir:…` followed by `tar -x` of every layer, and
# `podman pull` where podman is installed. Median of RUNS (default 5) cold
# pulls each, every run into an empty directory.
#
#   bench/image-pull.sh
#
# Environment: RUNS (default 5), LAYERS (default 6), MB_PER_LAYER (default 17,
# compressed size of each layer, roughly).
#
# The image: LAYERS gzip layers, each holding incompressible files (random
# data, 64 KiB each), base64 text (compresses ~4:3) and 1000 small files:
# about MB_PER_LAYER MB compressed per layer.
set -euo pipefail

RUNS=${RUNS:-5}
LAYERS=${LAYERS:-6}
MB_PER_LAYER=${MB_PER_LAYER:-17}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
export LC_ALL=C

for tool in docker-registry skopeo tar gzip sha256sum python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "$0: $tool not found (apt-get install docker-registry skopeo)" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/peapod-bench-pull.XXXXXX")
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "building the pull example (release)..." >&2
cargo build --release --quiet -p peapod-image --example pull
pull_bin=$here/target/release/examples/pull

# ----- the image ---------------------------------------------------------------

echo "making a ${LAYERS}-layer image..." >&2
layout=$work/layout
mkdir -p "$layout/blobs/sha256"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
random_kib=$((MB_PER_LAYER * 1024 * 3 / 4)) # 3/4 random, the rest text + small files
layers_json=
diff_ids_json=
for i in $(seq 1 "$LAYERS"); do
    root=$work/src/layer$i
    mkdir -p "$root/data$i/random" "$root/data$i/text" "$root/data$i/small"
    n=$((random_kib / 64))
    for j in $(seq 1 "$n"); do
        head -c 65536 /dev/urandom >"$root/data$i/random/f$j"
    done
    head -c $((MB_PER_LAYER * 1024 * 1024 / 5)) /dev/urandom | base64 >"$root/data$i/text/blob.txt"
    for j in $(seq 1 1000); do
        printf 'small file %d of layer %d\n' "$j" "$i" >"$root/data$i/small/s$j"
    done
    ln -s ../text/blob.txt "$root/data$i/small/link"
    tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=gnu -cf "$work/layer.tar" .
    diff=$(sha "$work/layer.tar")
    gzip -1 -n -c "$work/layer.tar" >"$work/layer.tar.gz"
    digest=$(sha "$work/layer.tar.gz")
    lsize=$(size "$work/layer.tar.gz")
    mv "$work/layer.tar.gz" "$layout/blobs/sha256/$digest"
    rm -f "$work/layer.tar"
    layers_json="$layers_json${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$lsize}"
    diff_ids_json="$diff_ids_json${diff_ids_json:+,}\"sha256:$diff\""
done
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diff_ids_json" >"$work/config.json"
cdigest=$(sha "$work/config.json")
csize=$(size "$work/config.json")
mv "$work/config.json" "$layout/blobs/sha256/$cdigest"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cdigest" "$csize" "$layers_json" >"$work/manifest.json"
mdigest=$(sha "$work/manifest.json")
msize=$(size "$work/manifest.json")
mv "$work/manifest.json" "$layout/blobs/sha256/$mdigest"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
    "$mdigest" "$msize" >"$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
total_mb=$(du -sm "$layout/blobs" | cut -f1)

# ----- the registry -------------------------------------------------------------

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/storage"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
ref=127.0.0.1:$port/bench/big:v1
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:v1" "docker://$ref"

# ----- timing --------------------------------------------------------------------
#
# Every run writes into a directory of its own, and nothing is deleted until
# the end: ext4 scans past inodes freed in the last seconds when it
# allocates new ones (`recently_deleted`), which makes file creation right
# after a big `rm -rf` several times slower and would skew whichever tool
# runs next. Runs of the tools alternate.

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

run_peapod() {
    local root=$work/out/peapod-$1
    local t0 t1
    t0=$(now)
    "$pull_bin" "$ref" "$root" >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
}

run_skopeo_tar() {
    local out=$work/out/skopeo-$1 rootfs=$work/out/skopeo-rootfs-$1
    local t0 t1
    t0=$(now)
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "dir:$out"
    # Layers, bottom first, each into its own directory (as peapod does).
    local n=0
    for digest in $(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
print("\n".join(l["digest"].split(":")[1] for l in m["layers"]))' "$out/manifest.json"); do
        n=$((n + 1))
        mkdir -p "$rootfs/$n"
        tar -xzf "$out/$digest" -C "$rootfs/$n"
    done
    t1=$(now)
    elapsed "$t0" "$t1"
}

run_podman() {
    local root=$work/out/podman-$1 runroot=$work/out/podman-run-$1
    local t0 t1
    t0=$(now)
    podman --root "$root" --runroot "$runroot" --storage-driver overlay \
        pull --quiet --tls-verify=false "$ref" >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
    podman --root "$root" --runroot "$runroot" --storage-driver overlay \
        system reset --force >/dev/null 2>&1 || true
}

mkdir -p "$work/out"
names=(peapod "skopeo+tar")
if command -v podman >/dev/null; then
    names+=(podman)
fi
declare -A times
for r in $(seq 1 "$RUNS"); do
    for name in "${names[@]}"; do
        sync
        case "$name" in
            peapod) t=$(run_peapod "$r") ;;
            skopeo+tar) t=$(run_skopeo_tar "$r") ;;
            podman) t=$(run_podman "$r") ;;
        esac
        times[$name]="${times[$name]:-} $t"
        printf '  %-11s run %d: %ss\n' "$name" "$r" "$t" >&2
    done
done

echo
echo "pull + unpack of $ref: $LAYERS gzip layers, ${total_mb} MB of blobs, median of $RUNS"
printf '%-24s %10s %s\n' "tool" "median s" "  runs"
for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    med=$(printf '%s\n' ${times[$name]} | median)
    printf '%-24s %10.3f   %s\n' "$name" "$med" "${times[$name]# }"
done
if ! command -v podman >/dev/null; then
    printf '%-24s %10s\n' "podman" "(not installed)"
fi
