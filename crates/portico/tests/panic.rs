//! A panic while handling a request is a 500 with the envelope, and the server lives on.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use portico_gateway::{Handler, HandlerFuture};
use portico_server::{Request, RequestBody};
use portico_testkit::{TestGateway, assert_error};

struct Boom;

impl Handler for Boom {
    fn handle<'a, 'c: 'a>(
        &'a self,
        _req: &'a mut Request,
        _body: &'a mut RequestBody<'c>,
    ) -> HandlerFuture<'a> {
        Box::pin(async { panic!("secret internal detail") })
    }
}

#[tokio::test]
async fn handler_panic_is_500_and_the_server_lives_on() {
    let config = "routes:\n  - {name: boom, path: /boom, methods: [GET], handler: echo}\n  - {name: fine, path: /fine, methods: [GET], handler: echo}\n";
    let gw =
        TestGateway::start_with(config, |g| g.with_handler("boom", Arc::new(Boom)).unwrap()).await;
    let mut c = gw.connect().await;
    c.send("GET /boom HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = c.response().await;
    assert_error(&resp, 500, "PTC.INTERNAL_ERROR");
    assert!(
        !String::from_utf8_lossy(&resp.body).contains("secret"),
        "internal text leaked"
    );
    assert!(resp.closes());
    for _ in 0..2 {
        let resp = gw.request("GET /fine HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(resp.status, 200);
    }
}
