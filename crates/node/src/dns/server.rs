//! The DNS server: hickory-server's UDP and TCP listeners with a handler
//! that answers the cluster domain from the [`Table`] and forwards every
//! other name to the host's resolvers (hickory-resolver).

use super::table::{Answer, Table};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::CNAME;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Answers queries: the cluster domain from the table, the rest from
/// `upstream`.
pub struct Handler {
    pub table: watch::Receiver<Arc<Table>>,
    /// None: no upstream resolvers (other names answer SERVFAIL).
    pub upstream: Option<TokioResolver>,
}

/// A resolver that asks `servers` (port 53) for every name as given, with
/// no search list and its own cache.
pub fn upstream_resolver(servers: &[SocketAddr]) -> Option<TokioResolver> {
    if servers.is_empty() {
        return None;
    }
    let mut group = NameServerConfigGroup::new();
    for s in servers {
        let g = NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true);
        group.merge(g);
    }
    let config = ResolverConfig::from_parts(None, Vec::new(), group);
    let mut opts = ResolverOpts::default();
    opts.ndots = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    let mut b = TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    *b.options_mut() = opts;
    Some(b.build())
}

impl Handler {
    /// The upstream's answer for `name`: its records, or its response
    /// code.
    async fn forward(&self, name: Name, qtype: RecordType) -> Result<Vec<Record>, ResponseCode> {
        let Some(up) = &self.upstream else {
            return Err(ResponseCode::ServFail);
        };
        match up.lookup(name.clone(), qtype).await {
            Ok(l) => Ok(l.records().to_vec()),
            Err(e) if e.is_nx_domain() => Err(ResponseCode::NXDomain),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => {
                tracing::debug!(%name, %qtype, "dns: upstream: {e}");
                Err(ResponseCode::ServFail)
            }
        }
    }

    /// The answer section and response code for one question.
    async fn answer(
        &self,
        name: Name,
        qtype: RecordType,
    ) -> (bool, Result<Vec<Record>, ResponseCode>) {
        let table = self.table.borrow().clone();
        let text = name.to_ascii();
        if !table.in_domain(&text) {
            return (false, self.forward(name, qtype).await);
        }
        match table.lookup(&text, qtype) {
            Answer::NxDomain => (true, Err(ResponseCode::NXDomain)),
            Answer::Records(mut recs) => {
                // An ExternalName's CNAME: chase its target, as CoreDNS
                // does, so stub resolvers that do not re-ask get addresses.
                let target = recs.iter().find_map(|r| match r.data() {
                    RData::CNAME(CNAME(t)) => Some(t.clone()),
                    _ => None,
                });
                if let Some(t) = target.filter(|_| qtype != RecordType::CNAME) {
                    if !table.in_domain(&t.to_ascii()) {
                        if let Ok(more) = self.forward(t, qtype).await {
                            recs.extend(more);
                        }
                    } else if let Answer::Records(more) = table.lookup(&t.to_ascii(), qtype) {
                        // One step inside the cluster (no CNAME loops).
                        recs.extend(
                            more.into_iter()
                                .filter(|r| r.record_type() != RecordType::CNAME),
                        );
                    }
                }
                (true, Ok(recs))
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(true);
        let info = match request.request_info() {
            Ok(info)
                if request.message_type() == MessageType::Query
                    && request.op_code() == OpCode::Query =>
            {
                info
            }
            _ => {
                let msg = builder.error_msg(request.header(), ResponseCode::NotImp);
                return response
                    .send_response(msg)
                    .await
                    .unwrap_or_else(|_| header.into());
            }
        };
        let name = Name::from(info.query.name());
        let qtype = info.query.query_type();
        let (authoritative, result) = self.answer(name, qtype).await;
        header.set_authoritative(authoritative);
        let records = match result {
            Ok(r) => r,
            Err(code) => {
                header.set_response_code(code);
                Vec::new()
            }
        };
        let msg = builder.build(header, records.iter(), [], [], []);
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns: sending a response: {e}");
                header.into()
            }
        }
    }
}

/// A socket of `ty` bound to `addr` with IP_FREEBIND: the address may
/// appear later (the CNI bridge gets its gateway address with the first
/// pod).
fn freebind_socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty.cloexec(), None)?;
    match addr.ip() {
        IpAddr::V4(_) => s.set_freebind_v4(true)?,
        IpAddr::V6(_) => s.set_freebind_v6(true)?,
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// UDP and TCP listeners on `addr`.
pub fn listen(
    addr: SocketAddr,
) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let udp = freebind_socket(addr, socket2::Type::DGRAM)?;
    let tcp = freebind_socket(addr, socket2::Type::STREAM)?;
    tcp.listen(128)?;
    Ok((
        tokio::net::UdpSocket::from_std(udp.into())?,
        tokio::net::TcpListener::from_std(tcp.into())?,
    ))
}

/// Serve `handler` on the listeners until the runtime ends.
pub fn spawn(
    handler: Handler,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
) -> hickory_server::ServerFuture<Handler> {
    let mut server = hickory_server::ServerFuture::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5));
    server
}
