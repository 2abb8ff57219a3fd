#!/usr/bin/env bash
# Build peapod's test images as OCI image-layout tarballs, from Debian's
# busybox-static, with nothing but coreutils, tar, sha256sum, gzip and gcc.
#
#   scripts/build-test-images.sh OUTDIR
#
# writes
#   OUTDIR/busybox.tar  localhost/peapod/busybox:latest
#       one layer: /bin/busybox and a symlink per applet in /bin, /bin/shmhelper
#       (scripts/shmhelper.c, static), /etc/passwd (root 0, app 1000,
#       nobody 65534), /etc/group, /tmp (1777), /root, /www/index.html;
#       Cmd ["sh"]
#   OUTDIR/httpd.tar    localhost/peapod/httpd:latest
#       the same base layer (identical bytes, so it is shared) plus a layer
#       with /www/healthz; Entrypoint httpd -f -v -p 8080 -h /www,
#       WorkingDir /www, ExposedPorts 8080/tcp
#
# Output is reproducible: the same busybox and gcc give the same digests.
# Environment: BUSYBOX (default /bin/busybox), CC (default gcc).
set -euo pipefail

if [ "$#" -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

umask 022
export LC_ALL=C TZ=UTC

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
cc=${CC:-gcc}
mkdir -p "$1"
out=$(cd "$1" && pwd)

if ! "$busybox" --list >/dev/null 2>&1; then
    echo "$0: $busybox is not a working busybox (apt-get install busybox-static)" >&2
    exit 1
fi
if ! command -v "$cc" >/dev/null; then
    echo "$0: $cc not found (apt-get install gcc libc6-dev)" >&2
    exit 1
fi

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7l) arch=arm ;;
    i?86) arch=386 ;;
    ppc64le) arch=ppc64le ;;
    s390x) arch=s390x ;;
    riscv64) arch=riscv64 ;;
    *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

path_env='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
epoch='1970-01-01T00:00:00Z'

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Reproducible tar of directory $1 into file $2 (uncompressed).
mktar() {
    tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=gnu -cf "$2" .
}

# Turn rootfs dir $1 into a gzip layer in blob dir $2; prints
# "<blob digest hex> <blob size> <diff id hex>".
mklayer() {
    local rootfs=$1 blobs=$2 t
    t=$(mktemp -p "$work")
    mktar "$rootfs" "$t"
    local diff
    diff=$(sha "$t")
    gzip -9 -n -c "$t" >"$t.gz"
    local digest
    digest=$(sha "$t.gz")
    cp "$t.gz" "$blobs/$digest"
    echo "$digest $(size "$t.gz") $diff"
    rm -f "$t" "$t.gz"
}

# Store stdin as a blob in dir $1; prints "<digest hex> <size>".
putblob() {
    local t digest
    t=$(mktemp -p "$work")
    cat >"$t"
    digest=$(sha "$t")
    mv "$t" "$1/$digest"
    echo "$digest $(size "$1/$digest")"
}

# ----- the base layer ---------------------------------------------------------

base=$work/base
mkdir -p "$base"/{bin,etc,tmp,root,www,dev,proc,sys}
cp "$busybox" "$base/bin/busybox"
chmod 0755 "$base/bin/busybox"
for applet in $("$busybox" --list); do
    case "$applet" in
        busybox | */* | "") continue ;;
    esac
    [ -e "$base/bin/$applet" ] || ln -s busybox "$base/bin/$applet"
done
"$cc" -static -O2 -o "$base/bin/shmhelper" "$here/shmhelper.c"
strip "$base/bin/shmhelper" 2>/dev/null || true
chmod 0755 "$base/bin/shmhelper"

cat >"$base/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$base/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
chmod 0644 "$base/etc/passwd" "$base/etc/group"
chmod 1777 "$base/tmp"
chmod 0700 "$base/root"
echo "hello from peapod" >"$base/www/index.html"
chmod 0644 "$base/www/index.html"

# ----- the httpd layer -------------------------------------------------------

httpd=$work/httpd
mkdir -p "$httpd/www"
echo "ok" >"$httpd/www/healthz"
chmod 0644 "$httpd/www/healthz"

# ----- layouts ---------------------------------------------------------------

# write_config NAME DIFF_IDS_JSON CONFIG_JSON -> blob digest + size
write_config() {
    local blobs=$1 diff_ids=$2 config=$3 history=$4
    printf '{"created":"%s","architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
        "$epoch" "$arch" "$config" "$diff_ids" "$history" | putblob "$blobs"
}

# make_layout OUTFILE IMAGE_NAME CONFIG_JSON LAYER...
# where each LAYER is "<digest> <size> <diff id>" and the blobs are in
# $work/blobs (copied into the layout as needed).
make_layout() {
    local outfile=$1 name=$2 config=$3
    shift 3
    local layout
    layout=$(mktemp -d -p "$work")
    mkdir -p "$layout/blobs/sha256"
    local blobs=$layout/blobs/sha256
    local layers_json="" diff_ids="" history="" sep=""
    local l digest lsize diff
    for l in "$@"; do
        read -r digest lsize diff <<<"$l"
        cp "$work/blobs/$digest" "$blobs/$digest"
        layers_json+="$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$lsize}"
        diff_ids+="$sep\"sha256:$diff\""
        history+="$sep{\"created\":\"$epoch\",\"created_by\":\"scripts/build-test-images.sh\"}"
        sep=","
    done
    local cdigest csize
    read -r cdigest csize < <(write_config "$blobs" "$diff_ids" "$config" "$history")
    local mdigest msize
    read -r mdigest msize < <(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$cdigest" "$csize" "$layers_json" | putblob "$blobs")
    local tag=${name##*:}
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"},"platform":{"architecture":"%s","os":"linux"}}]}' \
        "$mdigest" "$msize" "$name" "$tag" "$arch" >"$layout/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    chmod -R u=rwX,go=rX "$layout"
    tar -C "$layout" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=gnu -cf "$outfile.tmp" oci-layout index.json blobs
    mv "$outfile.tmp" "$outfile"
    echo "$outfile: $name manifest sha256:$mdigest"
}

mkdir -p "$work/blobs"
base_layer=$(mklayer "$base" "$work/blobs")
httpd_layer=$(mklayer "$httpd" "$work/blobs")

make_layout "$out/busybox.tar" localhost/peapod/busybox:latest \
    "{\"Env\":[\"$path_env\"],\"Cmd\":[\"sh\"]}" \
    "$base_layer"

make_layout "$out/httpd.tar" localhost/peapod/httpd:latest \
    "{\"Env\":[\"$path_env\"],\"Entrypoint\":[\"httpd\",\"-f\",\"-v\",\"-p\",\"8080\",\"-h\",\"/www\"],\"WorkingDir\":\"/www\",\"ExposedPorts\":{\"8080/tcp\":{}}}" \
    "$base_layer" "$httpd_layer"
