#!/usr/bin/env bash
# The test command: formatting, lints, unit tests and the integration tests
# (as root, against the real kernel, overlayfs, cgroups and shims).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the integration tests need root (namespaces, mounts, cgroups)" >&2
    exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
scripts/build-test-images.sh target/test-images
cargo test --workspace -- --test-threads "${PEAPOD_TEST_THREADS:-4}"
