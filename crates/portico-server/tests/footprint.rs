//! What an idle connection costs. Each connection is a task whose allocation is the size of
//! its future, held as long as the connection is open, so ten thousand idle keep-alive
//! connections cost ten thousand of them (buffers are let go after a second of idleness, so
//! they do not count). A 16 KiB array in the closing path once made every connection 18 KiB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use portico_http::HeadLimits;
use portico_server::{
    ClientIo, ConnSettings, Error, Exchange, Http2Settings, Request, RequestBody, Response,
    Service, Shutdown, serve_connection,
};

struct Nothing(Arc<ConnSettings>);

impl Service for Nothing {
    fn settings(&self) -> Arc<ConnSettings> {
        self.0.clone()
    }

    async fn call(&self, _: &mut Request, _: &mut RequestBody<'_>) -> Result<Response, Error> {
        Ok(Response::new(200))
    }

    fn log(&self, _: &Exchange<'_>) {}
}

#[tokio::test]
async fn an_idle_connection_stays_small() {
    let settings = Arc::new(ConnSettings {
        head: HeadLimits::default(),
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        max_body_bytes: 1 << 20,
        max_connections: 10,
        http2: Some(Http2Settings::default()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (_tx, shutdown) = Shutdown::new();
    let svc = Arc::new(Nothing(settings.clone()));
    let conn = serve_connection(
        ClientIo::Plain(stream),
        "127.0.0.1:1".parse().unwrap(),
        svc,
        settings,
        shutdown,
    );
    let size = std::mem::size_of_val(&conn);
    assert!(size <= 4096, "a connection's state is {size} bytes");
}
