//! `peapod-shim`: the per-pod roles in a binary of their own, so each
//! pod's long-lived processes (the shim and the infra process) map a small
//! program instead of the whole CLI and daemon: less relocated data per
//! process, less memory per pod. The same roles remain available as hidden
//! `peapod` subcommands, used when this binary is not installed beside it.
//!
//! Usage (by the daemon only): `peapod-shim shim --dir DIR`,
//! `peapod-shim shim-helper JSON`, `peapod-shim infra`.
//! Arguments are parsed by hand: a CLI parser would cost more than it saves
//! in a program nobody types.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("shim") => match (args.get(2).map(String::as_str), args.get(3)) {
            (Some("--dir"), Some(dir)) => peapod_shim::server::main(std::path::Path::new(dir)),
            _ => usage(),
        },
        Some("shim-helper") => match args.get(2) {
            Some(json) => peapod_shim::helper::run(json),
            None => usage(),
        },
        Some("infra") => peapod_shim::infra::run(),
        _ => usage(),
    };
    std::process::exit(code);
}

fn usage() -> i32 {
    eprintln!("peapod-shim is run by the peapod daemon: shim --dir DIR | shim-helper JSON | infra");
    2
}
