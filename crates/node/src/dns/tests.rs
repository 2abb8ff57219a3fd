//! The server over real sockets on 127.0.0.1: the cluster domain from the
//! table, other names from a fake upstream server.

use super::server::{self, Handler};
use super::table::Table;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::Header;
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Answers every A question with 192.0.2.7, counting the questions.
struct Upstream(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl RequestHandler for Upstream {
    async fn handle_request<R: ResponseHandler>(&self, req: &Request, mut resp: R) -> ResponseInfo {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let info = req.request_info().unwrap();
        let name = Name::from(info.query.name());
        let rec = Record::from_rdata(name, 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 7))));
        let header = Header::response_from_request(req.header());
        let b = MessageResponseBuilder::from_message_request(req);
        resp.send_response(b.build(header, [&rec], [], [], []))
            .await
            .unwrap()
    }
}

async fn serve<H: RequestHandler>(h: H) -> (SocketAddr, hickory_server::ServerFuture<H>) {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut s = hickory_server::ServerFuture::new(h);
    s.register_socket(udp);
    s.register_listener(tcp, std::time::Duration::from_secs(5));
    (addr, s)
}

fn table() -> Table {
    let svc = serde_yaml_ng::from_str(
        "metadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    let ext = serde_yaml_ng::from_str(
        "metadata: {name: ext, namespace: default}\nspec:\n  type: ExternalName\n  externalName: outside.test\n",
    )
    .unwrap();
    let alias = serde_yaml_ng::from_str(
        "metadata: {name: alias, namespace: default}\nspec:\n  type: ExternalName\n  externalName: web.default.svc.cluster.local\n",
    )
    .unwrap();
    Table::build("cluster.local", &[svc, ext, alias], &[])
}

#[tokio::test]
async fn cluster_names_from_the_table_and_others_forwarded() {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (up_addr, _up) = serve(Upstream(count.clone())).await;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(table()));
    let (addr, _srv) = serve(Handler {
        table: rx,
        upstream: server::upstream_resolver(&[up_addr]),
    })
    .await;
    let client = server::upstream_resolver(&[addr]).unwrap();
    let ips = |l: hickory_resolver::lookup::Lookup| -> Vec<String> {
        l.records()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect()
    };
    let l = client
        .lookup("web.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(ips(l), ["10.96.0.10"]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    let e = client
        .lookup("nope.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap_err();
    assert!(e.is_nx_domain(), "{e}");
    let l = client.lookup("host.example.", RecordType::A).await.unwrap();
    assert_eq!(ips(l), ["192.0.2.7"]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    // ExternalName: the CNAME and its target's address from upstream.
    let l = client
        .lookup("ext.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(ips(l), ["192.0.2.7"]);
    // An ExternalName naming a Service: its clusterIP, without upstream.
    let before = count.load(std::sync::atomic::Ordering::SeqCst);
    let l = client
        .lookup("alias.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(ips(l), ["10.96.0.10"]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[tokio::test]
async fn without_upstreams_other_names_fail_and_the_table_follows_changes() {
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(Table::new("cluster.local")));
    let (addr, _srv) = serve(Handler {
        table: rx,
        upstream: None,
    })
    .await;
    let client = server::upstream_resolver(&[addr]).unwrap();
    let e = client
        .lookup("web.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap_err();
    assert!(e.is_nx_domain(), "{e}");
    tx.send(Arc::new(table())).unwrap();
    // A new client: the first one keeps the NXDOMAIN in its cache.
    let client = server::upstream_resolver(&[addr]).unwrap();
    let l = client
        .lookup("WEB.default.svc.cluster.local.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(l.records().len(), 1);
    let e = client
        .lookup("host.example.", RecordType::A)
        .await
        .unwrap_err();
    assert!(!e.is_nx_domain(), "{e}");
    assert!(format!("{e:?}").contains("ServFail"), "{e:?}");
}

#[tokio::test]
async fn freebind_listens_on_an_address_the_host_does_not_have_yet() {
    // 10.255.254.1 is on no interface here; binding works all the same.
    let addr: SocketAddr = "10.255.254.1:5353".parse().unwrap();
    let (udp, tcp) = server::listen(addr).unwrap();
    assert_eq!(udp.local_addr().unwrap(), addr);
    assert_eq!(tcp.local_addr().unwrap(), addr);
}
