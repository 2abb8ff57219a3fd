//! Running one CNI plugin binary as the CNI specification (1.0) says: the
//! command and its arguments in `CNI_*` environment variables, the network
//! configuration as JSON on stdin, a result or an error as JSON on stdout.
//!
//! Hand-written rather than taken from a crate: the invoking side of CNI
//! is an exec with six environment variables, and the Rust crates for it
//! (rust-cni) are young, undocumented and fix their own config and plugin
//! paths; the maintained ones (cni-plugin, rscni) are for writing plugins,
//! not for calling them.

use crate::error::NetError;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
    Version,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Version => "VERSION",
        }
    }
}

/// The runtime's side of one invocation (the `CNI_*` variables).
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub container_id: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: Vec<(String, String)>,
}

/// Where plugin binaries are looked for, in order (`CNI_PATH`).
#[derive(Debug, Clone)]
pub struct PluginPath(pub Vec<PathBuf>);

impl PluginPath {
    /// The directory list as `CNI_PATH` spells it.
    pub fn joined(&self) -> String {
        self.0
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The binary of plugin `kind` (a plain file name: no `/`, no `..`).
    pub fn find(&self, kind: &str) -> Option<PathBuf> {
        if kind.is_empty() || kind.contains('/') || kind == "." || kind == ".." {
            return None;
        }
        self.0
            .iter()
            .map(|d| d.join(kind))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Run plugin `kind` of network `network` with `config` on stdin. Returns
/// the parsed stdout (a result for ADD, `null` for an empty DEL/CHECK
/// answer) or the plugin's error.
pub fn run(
    path: &PluginPath,
    kind: &str,
    network: &str,
    command: CniCommand,
    inv: &Invocation,
    config: &Value,
) -> Result<Value, NetError> {
    let bin = path.find(kind).ok_or_else(|| NetError::PluginNotFound {
        plugin: kind.to_string(),
        network: network.to_string(),
        search: path.joined(),
    })?;
    let exec_err = |message: String| NetError::Exec {
        plugin: kind.to_string(),
        network: network.to_string(),
        command: command.as_str(),
        message,
    };
    let stdin = serde_json::to_vec(config).map_err(|e| exec_err(e.to_string()))?;
    let args = inv
        .args
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    let mut cmd = Command::new(&bin);
    cmd.env("CNI_COMMAND", command.as_str())
        .env("CNI_PATH", path.joined())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0);
    if command != CniCommand::Version {
        cmd.env("CNI_CONTAINERID", &inv.container_id)
            .env("CNI_NETNS", &inv.netns)
            .env("CNI_IFNAME", &inv.ifname)
            .env("CNI_ARGS", args);
    }
    // ETXTBSY: the plugin binary was just written (an upgrade, or a
    // test's script) and a process forked meanwhile still holds the
    // writer's descriptor until it execs; it clears within moments.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => {
                break other.map_err(|e| exec_err(format!("cannot run {}: {e}", bin.display())))?
            }
        }
    };
    if let Some(mut w) = child.stdin.take() {
        // A plugin that exits without reading its stdin closes the pipe;
        // its exit status then tells what happened.
        let _ = w.write_all(&stdin);
    }
    let (out, timed_out) = wait_bounded(child, PLUGIN_TIMEOUT)
        .map_err(|e| exec_err(format!("waiting for {}: {e}", bin.display())))?;
    if timed_out {
        return Err(exec_err(format!(
            "{} did not finish within {} s and was killed",
            bin.display(),
            PLUGIN_TIMEOUT.as_secs()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let (code, message) = match serde_json::from_str::<PluginError>(&stdout) {
            Ok(e) => {
                let mut m = e.msg;
                if !e.details.is_empty() {
                    m = format!("{m}: {}", e.details);
                }
                (e.code, m)
            }
            Err(_) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let text = [stdout.trim(), stderr.trim()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                (0, format!("{} ({})", text, out.status))
            }
        };
        return Err(NetError::Plugin {
            plugin: kind.to_string(),
            network: network.to_string(),
            command: command.as_str(),
            code,
            message,
        });
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout)
        .map_err(|e| exec_err(format!("its answer is not JSON ({e}): {}", stdout.trim())))
}

/// How long one plugin call may take (an ADD takes ~30 ms here; a plugin
/// waiting forever on a lock held by someone else must not hold a pod's
/// sandbox creation, or the daemon's blocking threads, forever).
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// `wait_with_output`, but after `limit` the child's process group (it
/// leads one: see `run`) is killed; true when it was. A reader thread
/// still held by a grandchild that keeps the pipe ends when that does.
fn wait_bounded(mut child: Child, limit: Duration) -> std::io::Result<(Output, bool)> {
    fn reader(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut b);
            }
            let _ = tx.send(b);
        });
        rx
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let stdout = out.recv_timeout(limit);
    let timed_out = stdout.is_err();
    if timed_out {
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Not reaped yet (wait comes below), so the group is the plugin's.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
    }
    let status = child.wait()?;
    let left = deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_millis(100));
    Ok((
        Output {
            status,
            stdout: stdout.unwrap_or_default(),
            stderr: err.recv_timeout(left).unwrap_or_default(),
        },
        timed_out,
    ))
}

/// The error a plugin prints (CNI spec, "Error").
#[derive(Debug, serde::Deserialize)]
struct PluginError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_hung_plugin_is_killed() {
        let child = Command::new("sh")
            .args(["-c", "echo partial; sleep 30"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        let (out, timed_out) = wait_bounded(child, Duration::from_millis(200)).unwrap();
        assert!(timed_out);
        assert!(!out.status.success());
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let child = Command::new("sh")
            .args(["-c", "echo fine; echo warn >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, timed_out) = wait_bounded(child, Duration::from_secs(10)).unwrap();
        assert!(!timed_out);
        assert_eq!(out.stdout, b"fine\n");
        assert_eq!(out.stderr, b"warn\n");
    }

    #[test]
    fn passes_the_spec_variables_and_reads_errors() {
        let dir = tempfile::tempdir().unwrap();
        // Echoes what it was given, as a result.
        script(
            dir.path(),
            "echoer",
            r#"in=$(cat); printf '{"cmd":"%s","id":"%s","netns":"%s","if":"%s","args":"%s","path":"%s","in":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$in""#,
        );
        script(
            dir.path(),
            "failer",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available","details":"range 10.1.0.0/30"}'; exit 1"#,
        );
        script(dir.path(), "crasher", "echo boom >&2; exit 3");
        let path = PluginPath(vec![
            PathBuf::from("/nonexistent"),
            dir.path().to_path_buf(),
        ]);
        let inv = Invocation {
            container_id: "abc".into(),
            netns: "/run/x/ns/net".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "web".into())],
        };
        let cfg = serde_json::json!({"name": "n", "type": "echoer"});
        let v = run(&path, "echoer", "n", CniCommand::Add, &inv, &cfg).unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["netns"], "/run/x/ns/net");
        assert_eq!(v["if"], "eth0");
        assert_eq!(v["args"], "K8S_POD_NAME=web");
        assert_eq!(v["path"], format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(v["in"], cfg);

        let e = run(&path, "failer", "n", CniCommand::Add, &inv, &cfg).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, NetError::Plugin { code: 11, .. }), "{text}");
        assert!(
            text.contains("no IP addresses available: range 10.1.0.0/30"),
            "{text}"
        );
        let e = run(&path, "crasher", "n", CniCommand::Del, &inv, &cfg).unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let e = run(&path, "../crasher", "n", CniCommand::Del, &inv, &cfg).unwrap_err();
        assert!(matches!(e, NetError::PluginNotFound { .. }), "{e}");
        let e = run(&path, "nosuch", "n", CniCommand::Del, &inv, &cfg).unwrap_err();
        assert!(e.to_string().contains("containernetworking-plugins"), "{e}");
    }
}
