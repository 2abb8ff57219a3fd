//! The object store's API-server semantics, end to end: events are stored
//! objects that survive a daemon restart, watches resume from a
//! resourceVersion (and say 410 when they cannot), `delete` gives up with a
//! clear message. Each test has its own daemon (see `common`).

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn sleeper(name: &str, grace: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: {grace}\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    )
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
}

/// The `Events:` section of `describe`, without the Age column.
fn event_lines(describe: &str) -> Vec<String> {
    describe
        .split("Events:")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(3)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // Type Reason Age From Message...
            let mut kept: Vec<&str> = cols.iter().take(2).copied().collect();
            kept.extend(cols.iter().skip(4));
            kept.join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn events_survive_a_daemon_restart() {
    let mut d = Daemon::start();
    d.apply_ok(&sleeper("kept", 0));
    let pod = d.wait_running("kept");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let before = event_lines(&d.ok(&["describe", "pod", "kept"]));
    assert!(
        before.iter().any(|l| l.contains("Scheduled"))
            && before.iter().any(|l| l.contains("Started container c")),
        "{before:?}"
    );
    let (code, body) = d.api_get("/api/v1/namespaces/default/events");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let list: Value = serde_json::from_slice(&body).unwrap();
    let stored = list["items"].as_array().unwrap().clone();
    assert!(rv(&list) > 0);
    assert!(stored
        .iter()
        .all(|e| e["involvedObject"]["uid"] == uid.as_str()
            && e["count"].as_i64().unwrap_or(0) >= 1
            && e["firstTimestamp"].is_string()
            && e["lastTimestamp"].is_string()));

    d.restart(&[]);
    let after = d.wait_running("kept");
    assert_eq!(after["metadata"]["uid"], uid.as_str(), "same pod, adopted");
    let (_, body) = d.api_get("/api/v1/namespaces/default/events");
    let list: Value = serde_json::from_slice(&body).unwrap();
    let names = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let again = list["items"].as_array().unwrap();
    for name in names(&stored) {
        assert!(
            names(again).contains(&name),
            "event {name} lost in the restart: {again:?}"
        );
    }
    let describe = d.ok(&["describe", "pod", "kept"]);
    let now = event_lines(&describe);
    for l in &before {
        assert!(now.contains(l), "{l:?} missing after restart:\n{describe}");
    }
    // The daemon registered its namespace and node.
    let (code, _) = d.api_get("/api/v1/namespaces/default");
    assert_eq!(code, 200);
    let (code, body) = d.api_get("/api/v1/nodes");
    let nodes: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        nodes["items"].as_array().map(|a| a.len()),
        Some(1),
        "{nodes}"
    );
}

#[test]
fn watch_resumes_from_a_resource_version() {
    let mut d = Daemon::start();
    d.apply_ok(&sleeper("first", 0));
    d.wait_running("first");
    let (code, body) = d.api_get("/api/v1/namespaces/default/pods");
    assert_eq!(code, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    let listed_at = rv(&list);

    // `get -w` prints the list, then the changes as they come.
    let mut watcher = std::process::Command::new(exe())
        .args(["--socket", d.socket.to_str().unwrap(), "get", "pods", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("get -w");

    d.apply_ok(&sleeper("second", 0));
    d.wait_running("second");
    d.ok(&["delete", "pod", "first"]);

    // Resumed after the list: exactly the later changes, in order.
    let events = d.api_watch(
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={listed_at}"),
        Duration::from_millis(500),
    );
    assert!(!events.is_empty());
    let mut last = listed_at;
    for e in &events {
        let v = rv(&e["object"]);
        assert!(v > last, "versions must grow: {v} after {last}: {events:?}");
        last = v;
    }
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary
            .iter()
            .find(|(_, n)| n == "second")
            .map(|(t, _)| t.as_str()),
        Some("ADDED"),
        "{summary:?}"
    );
    assert_eq!(
        summary.last(),
        Some(&("DELETED".to_string(), "first".to_string())),
        "{summary:?}"
    );
    assert!(
        !summary.contains(&("ADDED".to_string(), "first".to_string())),
        "a change from before the version was replayed: {summary:?}"
    );
    // Resuming from the last one replays nothing.
    let none = d.api_watch(
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={last}"),
        Duration::from_millis(300),
    );
    assert_eq!(none, Vec::<Value>::new());

    let _ = watcher.kill();
    let out = watcher.wait_with_output().expect("get -w output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("first"))
            && text.lines().any(|l| l.starts_with("second")),
        "{text}"
    );

    // A new daemon keeps no history from before it started: 410 Expired,
    // and the client lists again.
    d.restart(&[]);
    let events = d.api_watch(
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={listed_at}"),
        Duration::from_millis(300),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    let (_, body) = d.api_get("/api/v1/namespaces/default/pods");
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert!(rv(&list) > last, "resourceVersions grow across restarts");
    d.ok(&["delete", "pod", "second"]);
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

#[test]
fn delete_gives_up_after_its_timeout_naming_what_runs() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: stubborn}}\nspec:\n  terminationGracePeriodSeconds: 6\n  containers:\n  - name: ignores-term\n    image: {BUSYBOX}\n    command: [sh, -c, \"trap '' TERM; while true; do sleep 0.1; done\"]\n"
    ));
    d.wait_running("stubborn");
    let out = d.peapod(&["delete", "pod", "stubborn", "--timeout", "2s"]);
    assert!(!out.status.success(), "delete must fail after its timeout");
    assert!(
        stdout(&out).contains("pod \"stubborn\" deleted"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("waiting for pod \"stubborn\" to terminate (grace period 6s)"),
        "{err}"
    );
    assert!(
        err.contains("timed out after 2s waiting for pod \"stubborn\"")
            && err.contains("ignores-term")
            && err.contains("--grace-period=0"),
        "{err}"
    );
    // The daemon keeps stopping it: SIGKILL at the end of the grace period.
    d.ok(&["delete", "pod", "stubborn"]);
    assert!(d.pod_names().is_empty());
    assert_eq!(d.leftovers(), Vec::<String>::new());
}
