//! gRPC through Portico, with a real gRPC client and server: tonic's client over a tonic
//! channel, and tonic's server-side codec on hyper's HTTP/2 server as the upstream (`h2c://`,
//! or `https://` behind a TLS front that offers `h2`). The upstream's `grpc-status` and
//! `grpc-message` arrive as it sent them, in the trailer section after streamed messages as
//! well as in a Trailers-Only answer; Portico's own errors on `grpc: true` routes arrive as
//! gRPC statuses, with the HTTP status the contract gives.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::uri::PathAndQuery;
use portico_testkit::{RawClient, TestGateway, TlsFront, closed_port, tls_server_config};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

/// The one message of the test service.
#[derive(Clone, PartialEq, prost::Message)]
struct Note {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

fn note(text: &str, count: u32) -> Note {
    Note {
        text: text.to_string(),
        count,
    }
}

type Answer<T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send>>;

/// `Echo`: the note back, with the `te` the upstream received; `fail` is a
/// `FAILED_PRECONDITION` whose message is not ASCII. `Hang`: never answers.
struct Echo {
    hang: bool,
}

impl tonic::server::UnaryService<Note> for Echo {
    type Response = Note;
    type Future = Answer<Note>;

    fn call(&mut self, request: Request<Note>) -> Self::Future {
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            let te = request
                .metadata()
                .get("te")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            let n = request.into_inner();
            if n.text == "fail" {
                return Err(Status::failed_precondition("no notes here: ünïcode"));
            }
            Ok(Response::new(note(&format!("{} te={te}", n.text), n.count)))
        })
    }
}

/// `Repeat`: `count` notes, then OK, or `ABORTED` after them when the text is `abort`.
struct Repeat;

impl tonic::server::ServerStreamingService<Note> for Repeat {
    type Response = Note;
    type ResponseStream = BoxStream<'static, Result<Note, Status>>;
    type Future = Answer<Self::ResponseStream>;

    fn call(&mut self, request: Request<Note>) -> Self::Future {
        let n = request.into_inner();
        let end = (n.text == "abort").then(|| Err(Status::aborted("stopped after the notes")));
        let notes = (0..n.count).map(move |i| Ok(note(&format!("{} {i}", n.text), i)));
        let items: Vec<_> = notes.chain(end).collect();
        Box::pin(async move { Ok(Response::new(stream::iter(items).boxed())) })
    }
}

/// `Collect`: the texts of every note the client streamed, joined.
struct Collect;

impl tonic::server::ClientStreamingService<Note> for Collect {
    type Response = Note;
    type Future = Answer<Note>;

    fn call(&mut self, request: Request<tonic::Streaming<Note>>) -> Self::Future {
        Box::pin(async move {
            let mut notes = request.into_inner();
            let mut texts = Vec::new();
            while let Some(n) = notes.message().await? {
                texts.push(n.text);
            }
            Ok(Response::new(note(&texts.join(","), texts.len() as u32)))
        })
    }
}

/// `Chat`: each note answered as it arrives (the answer's head goes before the first note),
/// then OK when the client's stream ends.
struct Chat;

impl tonic::server::StreamingService<Note> for Chat {
    type Response = Note;
    type ResponseStream = BoxStream<'static, Result<Note, Status>>;
    type Future = Answer<Self::ResponseStream>;

    fn call(&mut self, request: Request<tonic::Streaming<Note>>) -> Self::Future {
        let notes = request.into_inner();
        let replies = stream::unfold(notes, |mut notes| async move {
            match notes.message().await {
                Ok(Some(n)) => Some((Ok(note(&n.text.to_uppercase(), n.count)), notes)),
                Ok(None) => None,
                Err(status) => Some((Err(status), notes)),
            }
        });
        Box::pin(async move { Ok(Response::new(replies.boxed())) })
    }
}

/// A gRPC server on an ephemeral port: each method is chosen by the last segment of the
/// path, whatever the service name (the routes below tell services apart).
async fn grpc_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let mut grpc =
                            tonic::server::Grpc::new(ProstCodec::<Note, Note>::default());
                        let method = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        let resp = match method.as_str() {
                            "Echo" => grpc.unary(Echo { hang: false }, req).await,
                            "Hang" => grpc.unary(Echo { hang: true }, req).await,
                            "Repeat" => grpc.server_streaming(Repeat, req).await,
                            "Collect" => grpc.client_streaming(Collect, req).await,
                            "Chat" => grpc.streaming(Chat, req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                        .await;
            });
        }
    });
    addr
}

/// Routes for each service: `Notes` to `target`, `Slow` with a 300 ms deadline, `Limited`
/// with one call an hour, `Gone` to a closed port; `Plain` to the closed port too, not marked
/// gRPC.
async fn config(target: &str) -> String {
    let closed = closed_port().await;
    let route = |service: &str, upstream: &str, extra: &str| {
        format!(
            "  - name: {service}\n    path: /portico.test.{service}/{{method}}\n    methods: [POST]\n    upstream: {upstream}\n{extra}"
        )
    };
    let grpc = "    grpc: true\n";
    format!(
        "upstreams:\n  - name: notes\n    targets: [\"{target}\"]\n  - name: gone\n    targets: [\"h2c://{closed}\"]\nroutes:\n{}{}{}{}{}",
        route("Notes", "notes", grpc),
        route("Slow", "notes", &format!("{grpc}    timeout: 300ms\n")),
        route(
            "Limited",
            "notes",
            &format!("{grpc}    rate_limit: {{key: route, rate: 1/h, burst: 1}}\n")
        ),
        route("Gone", "gone", grpc),
        route("Plain", "gone", ""),
    )
}

async fn channel(gw: &TestGateway) -> tonic::client::Grpc<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

async fn unary(
    client: &mut tonic::client::Grpc<Channel>,
    path: &'static str,
    n: Note,
) -> Result<Note, Status> {
    client.ready().await.unwrap();
    let codec = ProstCodec::<Note, Note>::default();
    client
        .unary(Request::new(n), PathAndQuery::from_static(path), codec)
        .await
        .map(Response::into_inner)
}

/// The notes of a server-streaming call, and the status it ended with.
async fn repeat(client: &mut tonic::client::Grpc<Channel>, n: Note) -> (Vec<String>, Status) {
    client.ready().await.unwrap();
    let codec = ProstCodec::<Note, Note>::default();
    let path = PathAndQuery::from_static("/portico.test.Notes/Repeat");
    let mut notes = client
        .server_streaming(Request::new(n), path, codec)
        .await
        .unwrap()
        .into_inner();
    let mut texts = Vec::new();
    loop {
        match notes.message().await {
            Ok(Some(n)) => texts.push(n.text),
            Ok(None) => return (texts, Status::ok("")),
            Err(status) => return (texts, status),
        }
    }
}

/// Unary, server-streaming and client-streaming calls through a route to `target`.
async fn calls_cross(target: &str) {
    let gw = TestGateway::start(&config(target).await).await;
    let mut client = channel(&gw).await;

    let echoed = unary(&mut client, "/portico.test.Notes/Echo", note("hi", 7))
        .await
        .unwrap();
    // The client's `te: trailers` reached the upstream.
    assert_eq!(echoed, note("hi te=trailers", 7));

    // A status with a non-ASCII message, percent-encoded by the upstream, arrives whole.
    let failed = unary(&mut client, "/portico.test.Notes/Echo", note("fail", 0))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition);
    assert_eq!(failed.message(), "no notes here: ünïcode");

    // Messages, then the status in the trailer section: both ways it ends.
    let (texts, status) = repeat(&mut client, note("n", 3)).await;
    assert_eq!(texts, ["n 0", "n 1", "n 2"]);
    assert_eq!(status.code(), Code::Ok);
    let (texts, status) = repeat(&mut client, note("abort", 2)).await;
    assert_eq!(texts, ["abort 0", "abort 1"]);
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "stopped after the notes");

    // A request stream goes up whole.
    client.ready().await.unwrap();
    let codec = ProstCodec::<Note, Note>::default();
    let path = PathAndQuery::from_static("/portico.test.Notes/Collect");
    let notes = stream::iter(["a", "b", "c"].map(|t| note(t, 0)));
    let collected = client
        .client_streaming(Request::new(notes), path, codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(collected, note("a,b,c", 3));

    // Both ways at once: each note goes up only after the answer to the one before came
    // down, so the request stream must go on after the response's head.
    client.ready().await.unwrap();
    let codec = ProstCodec::<Note, Note>::default();
    let path = PathAndQuery::from_static("/portico.test.Notes/Chat");
    let (tx, rx) = tokio::sync::mpsc::channel::<Note>(1);
    let outgoing = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    tx.send(note("one", 1)).await.unwrap();
    let mut replies = client
        .streaming(Request::new(outgoing), path, codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replies.message().await.unwrap(), Some(note("ONE", 1)));
    tx.send(note("two", 2)).await.unwrap();
    assert_eq!(replies.message().await.unwrap(), Some(note("TWO", 2)));
    drop(tx);
    assert_eq!(replies.message().await.unwrap(), None);
}

#[tokio::test]
async fn grpc_calls_through_an_h2c_upstream_keep_their_statuses() {
    let up = grpc_upstream().await;
    calls_cross(&format!("h2c://{up}")).await;
}

#[tokio::test]
async fn grpc_calls_through_an_https_upstream_keep_their_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, c.cert.pem()).unwrap();
    let up = grpc_upstream().await;
    let front = TlsFront::start(
        tls_server_config(&c.cert.pem(), &c.signing_key.serialize_pem(), &[b"h2"]),
        up,
    )
    .await;
    let target = format!("https://localhost:{}", front.addr.port());
    let yaml = config(&target).await.replace(
        &format!("targets: [\"{target}\"]\n"),
        &format!(
            "targets: [\"{target}\"]\n    tls:\n      ca: {}\n",
            ca.display()
        ),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut client = channel(&gw).await;
    let (texts, status) = repeat(&mut client, note("abort", 1)).await;
    assert_eq!(texts, ["abort 0"]);
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "stopped after the notes");
}

#[tokio::test]
async fn portico_errors_on_grpc_routes_are_grpc_statuses() {
    let up = grpc_upstream().await;
    let gw = TestGateway::start(&config(&format!("h2c://{up}")).await).await;
    let mut client = channel(&gw).await;

    let gone = unary(&mut client, "/portico.test.Gone/Echo", note("x", 0))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unavailable);
    assert_eq!(
        gone.metadata().get("x-portico-error-code").unwrap(),
        "PTC.UPSTREAM_CONNECT_REFUSED"
    );

    let slow = unary(&mut client, "/portico.test.Slow/Hang", note("x", 0))
        .await
        .unwrap_err();
    assert_eq!(slow.code(), Code::DeadlineExceeded);
    assert_eq!(
        slow.message(),
        "The upstream service did not answer before the request's deadline."
    );

    unary(&mut client, "/portico.test.Limited/Echo", note("x", 0))
        .await
        .unwrap();
    let limited = unary(&mut client, "/portico.test.Limited/Echo", note("x", 0))
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert!(limited.metadata().get("retry-after").is_some());

    // On the wire: the contract's status, a gRPC Trailers-Only answer, no body.
    let mut h2 = portico_testkit::h2::client(gw.addr).await;
    let call = |path: &str| {
        http::Request::post(format!("http://{}{path}", gw.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap()
    };
    let (resp, _) = h2
        .send_request(call("/portico.test.Gone/Echo"), true)
        .unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["grpc-status"], "14");
    assert!(resp.body().is_end_stream());
    // GET on a gRPC service's path: the method is unknown there.
    let get = http::Request::get(format!("http://{}/portico.test.Notes/Echo", gw.addr))
        .body(())
        .unwrap();
    let h2 = h2.ready().await.unwrap();
    let mut h2 = h2;
    let (resp, _) = h2.send_request(get, true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert_eq!(resp.headers()["allow"], "POST, OPTIONS");

    // A route not marked gRPC keeps the JSON error body.
    let plain = gw
        .request("POST /portico.test.Plain/Echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .await;
    portico_testkit::assert_error(&plain, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
    assert!(plain.headers.get("grpc-status").is_none());
}

/// The gRPC frame of a note: no compression, its length, its bytes.
fn frame(n: &Note) -> Vec<u8> {
    let bytes = prost::Message::encode_to_vec(n);
    let mut out = vec![0u8];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

#[tokio::test]
async fn trailers_reach_http11_clients_in_the_chunked_trailer_section() {
    let up = grpc_upstream().await;
    let gw = TestGateway::start(&config(&format!("h2c://{up}")).await).await;
    let body = frame(&note("abort", 2));
    let mut c = RawClient::connect(gw.addr).await;
    let mut raw = format!(
        "POST /portico.test.Notes/Repeat HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    c.send(&raw).await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert!(resp.chunked);
    let mut sent = frame(&note("abort 0", 0));
    sent.extend(frame(&note("abort 1", 1)));
    assert_eq!(resp.body, sent);
    assert_eq!(resp.trailers.get("grpc-status"), Some("10"));
    // As the upstream sent it (tonic percent-encodes spaces too).
    assert_eq!(
        resp.trailers.get("grpc-message"),
        Some("stopped%20after%20the%20notes")
    );
    // The connection carries the next request.
    c.send("POST /portico.test.Gone/Echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 502);
    assert_eq!(resp.headers.get("grpc-status"), Some("14"));
}
