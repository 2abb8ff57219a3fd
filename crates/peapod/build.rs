//! Link `peapod-shim` as a position-dependent executable.
//!
//! One shim runs per pod for the pod's whole life, so its private memory
//! is paid once per pod. In a PIE every pointer in the binary's relocated
//! data (`.data.rel.ro`: vtables, string tables, the GOT) is patched at
//! load time, which dirties ~450 KiB of private pages per process here; a
//! non-PIE binary has those resolved at link time and shares them with
//! every other shim through the page cache. The cost is that the shim's
//! own image is not randomised (ASLR still covers its heap, stack, mmaps
//! and libraries), as for Go's default builds such as containerd's shims.
fn main() {
    println!("cargo:rustc-link-arg-bin=peapod-shim=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
