//! GetContainerEvents: CONTAINER_CREATED / STARTED / STOPPED / DELETED
//! with the pod sandbox's status and its containers' statuses, as
//! containerd emits them for kubelet's evented PLEG.
//!
//! The RPCs that change a container emit its event; a container that exits
//! by itself is noticed by a watcher that looks at the started containers
//! once a second while someone listens. Each container's last event is
//! kept, so a stop is reported once whichever path sees it first.

use crate::{convert, pb, Cri};
use pb::ContainerEventType as Kind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;

/// Events a slow subscriber may fall behind by before it loses some.
const BACKLOG: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<pb::ContainerEventResponse>,
    last: Mutex<HashMap<String, Kind>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<pb::ContainerEventResponse> {
        self.tx.subscribe()
    }

    /// Record `kind` for `cid`; false if it is what was last reported.
    fn transition(&self, cid: &str, kind: Kind) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        if kind == Kind::ContainerDeletedEvent {
            last.remove(cid);
            return true;
        }
        last.insert(cid.to_string(), kind) != Some(kind)
    }

    fn last(&self, cid: &str) -> Option<Kind> {
        self.last.lock().ok()?.get(cid).copied()
    }

    fn started(&self) -> Vec<String> {
        self.last
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(_, k)| **k == Kind::ContainerStartedEvent)
                    .map(|(c, _)| c.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Report `kind` for container `cid` of sandbox `sid` (the sandbox is
/// passed because a deleted container no longer names it).
pub async fn emit(cri: &Cri, sid: &str, cid: &str, kind: Kind) {
    // A started container removed before its exit was noticed stopped
    // first (the watcher looks only once a second).
    if kind == Kind::ContainerDeletedEvent
        && cri.events.last(cid) == Some(Kind::ContainerStartedEvent)
        && cri.events.transition(cid, Kind::ContainerStoppedEvent)
    {
        send(cri, sid, cid, Kind::ContainerStoppedEvent).await;
    }
    if cri.events.transition(cid, kind) {
        send(cri, sid, cid, kind).await;
    }
}

async fn send(cri: &Cri, sid: &str, cid: &str, kind: Kind) {
    let s = sid.to_string();
    let view = cri
        .blocking(move |rt| {
            let sandbox = rt.pod_sandbox_status(&s).ok();
            let filter = peapod_runtime::ContainerFilter {
                sandbox_id: Some(s.clone()),
                ..Default::default()
            };
            let containers = rt.list_containers(&filter);
            Ok((sandbox, containers))
        })
        .await;
    let (sandbox, containers) = view.unwrap_or_default();
    let ev = pb::ContainerEventResponse {
        container_id: cid.to_string(),
        container_event_type: kind as i32,
        created_at: convert::now_nanos(),
        pod_sandbox_status: sandbox.as_ref().map(convert::sandbox_status),
        containers_statuses: containers.iter().map(convert::container_status).collect(),
    };
    // No subscriber is not an error.
    let _ = cri.events.tx.send(ev);
}

/// The sandbox of container `cid`, for an event about to be emitted.
pub async fn sandbox_of(cri: &Cri, cid: &str) -> Option<String> {
    let c = cid.to_string();
    cri.blocking(move |rt| rt.container_status(&c).map(|s| s.sandbox_id))
        .await
        .ok()
}

/// Notice started containers that exited by themselves, while anybody
/// listens; ends when the server's state is dropped.
pub async fn watch_exits(cri: Weak<Cri>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(cri) = cri.upgrade() else { return };
        if cri.events.tx.receiver_count() == 0 {
            continue;
        }
        for cid in cri.events.started() {
            let c = cid.clone();
            let st = cri.blocking(move |rt| rt.container_status(&c)).await;
            if let Ok(st) = st {
                if matches!(
                    st.state,
                    peapod_runtime::ContainerState::Exited
                        | peapod_runtime::ContainerState::Unknown
                ) {
                    emit(&cri, &st.sandbox_id, &cid, Kind::ContainerStoppedEvent).await;
                }
            }
        }
    }
}

/// The server-streamed RPC: every event from now on.
pub fn stream(
    cri: &Arc<Cri>,
) -> impl tokio_stream::Stream<Item = Result<pb::ContainerEventResponse, tonic::Status>> {
    let rx = cri.events.subscribe();
    tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| match r {
        Ok(ev) => Some(Ok(ev)),
        // A subscriber that fell behind skips what it missed.
        Err(_) => None,
    })
}
