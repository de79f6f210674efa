//! TLS listeners (rustls): HTTP/2 or HTTP/1.1 as ALPN chooses, a new certificate on reload
//! without dropping a connection, and handshakes that fail or stall costing only their
//! connection.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portico_testkit::h2 as h2t;
use portico_testkit::{MockUpstream, RawClient, Reply, TestGateway, proxy_config};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost`: its PEM, its key's PEM, and its DER.
fn certificate() -> (String, String, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().clone(),
    )
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn config(cert: &Path, key: &Path, limits: &str) -> String {
    format!(
        "tls:\n  listen: 127.0.0.1:0\n  cert: {}\n  key: {}\n{limits}routes:\n  - {{name: echo, path: /echo, methods: [GET], handler: echo}}\n",
        cert.display(),
        key.display()
    )
}

/// A TLS session with the gateway's TLS listener, as a client that trusts `trusted` and
/// offers `alpn`; returns the session, the protocol ALPN chose, and the certificate the
/// server presented.
async fn handshake(
    gw: &TestGateway,
    trusted: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    Option<Vec<u8>>,
    CertificateDer<'static>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(gw.tls_addr.unwrap()).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, alpn, presented)
}

/// An HTTP/1.1 client over TLS (ALPN `http/1.1`); also the certificate presented.
async fn connect(
    gw: &TestGateway,
    trusted: &CertificateDer<'static>,
) -> (RawClient, Option<Vec<u8>>, CertificateDer<'static>) {
    let (tls, alpn, presented) = handshake(gw, trusted, &[b"http/1.1"]).await;
    (RawClient::over(tls), alpn, presented)
}

const GET: &str = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn alpn_chooses_h2_when_the_client_offers_it_and_http11_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let gw = TestGateway::start(&config(&c, &k, "")).await;
    let (tls, alpn, _) = handshake(&gw, &der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let mut h2 = h2t::client_over(tls).await;
    let resp = h2t::send(
        &mut h2,
        h2t::request("GET", "https://localhost/echo", &[]),
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json()["headers"]["host"], "localhost");

    // A client that offers nothing, or only HTTP/1.1, speaks HTTP/1.1.
    for offer in [&[][..], &[&b"http/1.1"[..]][..]] {
        let (tls, alpn, _) = handshake(&gw, &der, offer).await;
        assert_eq!(alpn.as_deref(), offer.first().copied());
        let mut client = RawClient::over(tls);
        client.send(GET).await;
        assert_eq!(client.response().await.status, 200);
    }

    // With HTTP/2 off, `h2` is not on offer.
    let gw = TestGateway::start(&config(&c, &k, "http2: {enabled: false}\n")).await;
    let (_, alpn, _) = handshake(&gw, &der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn requests_over_tls_are_served_with_alpn_http11() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let gw = TestGateway::start(&config(&c, &k, "")).await;
    let (mut client, alpn, presented) = connect(&gw, &der).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(presented, der);
    for _ in 0..3 {
        client.send(GET).await;
        let resp = client.response().await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["path"], "/echo");
        assert!(resp.header("x-request-id").is_some());
    }
    // The plain listener goes on beside it.
    assert_eq!(gw.request(GET).await.status, 200);
}

#[tokio::test]
async fn requests_over_tls_are_forwarded_with_x_forwarded_proto_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let mut up = MockUpstream::start(|_| Reply::ok("up")).await;
    let yaml = format!(
        "tls:\n  listen: 127.0.0.1:0\n  cert: {}\n  key: {}\n{}",
        c.display(),
        k.display(),
        proxy_config(up.addr)
    );
    let gw = TestGateway::start(&yaml).await;
    let (mut client, _, _) = connect(&gw, &der).await;
    client
        .send("GET /api/x HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\n\r\n")
        .await;
    assert_eq!(client.response().await.status, 200);
    assert_eq!(up.next().await.header("x-forwarded-proto"), Some("https"));
    // So does HTTP/2 over TLS.
    let (tls, _, _) = handshake(&gw, &der, &[b"h2"]).await;
    let mut h2 = h2t::client_over(tls).await;
    let resp = h2t::send(
        &mut h2,
        h2t::request("GET", "https://localhost/api/y", &[]),
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let got = up.next().await;
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
    assert_eq!(got.header("via"), Some("2 portico"));
    // The plain listener beside it says http.
    assert_eq!(
        gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .status,
        200
    );
    assert_eq!(up.next().await.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn a_reload_takes_a_new_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = certificate();
    let (c, k) = write_pair(dir.path(), &cert_a, &key_a);
    let yaml = config(&c, &k, "");
    let gw = TestGateway::start(&yaml).await;
    let (mut before, _, presented) = connect(&gw, &der_a).await;
    assert_eq!(presented, der_a);
    before.send(GET).await;
    assert_eq!(before.response().await.status, 200);

    // New files, same paths, reload: new handshakes get the new certificate.
    let (cert_b, key_b, der_b) = certificate();
    write_pair(dir.path(), &cert_b, &key_b);
    gw.reload(&yaml);
    let (mut after, _, presented) = connect(&gw, &der_b).await;
    assert_eq!(presented, der_b);
    after.send(GET).await;
    assert_eq!(after.response().await.status, 200);
    // The connection opened before goes on, on its old session.
    before.send(GET).await;
    assert_eq!(before.response().await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn failed_and_stalled_handshakes_cost_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let gw = TestGateway::start(&config(&c, &k, "limits: {header_timeout: 10s}\n")).await;
    let tls_addr = gw.tls_addr.unwrap();
    // Plain HTTP on the TLS port: not a handshake. The connection ends (after a TLS alert at
    // most), and never with an HTTP response.
    let mut confused = RawClient::connect(tls_addr).await;
    confused.send(GET).await;
    let answer = confused.read_to_end().await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "{answer:?}"
    );
    // A client that connects and says nothing is closed when the header timeout passes.
    let mut silent = TcpStream::connect(tls_addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::io::AsyncReadExt::read(&mut silent, &mut buf)
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    let _ = silent.shutdown().await;
    // Meanwhile and afterwards, a proper client is served.
    let (mut client, _, _) = connect(&gw, &der).await;
    client.send(GET).await;
    assert_eq!(client.response().await.status, 200);
}
