//! Asynchronous jobs over real sockets, kept in a real SQLite store: an answer within
//! `sync_wait` is relayed as usual; a later one makes the request a job (202 with
//! `Location`), polled to 303 and replayed from its result with conditional and range
//! requests; `Prefer: respond-async` is 202 at once; a client deadline keeps the request
//! synchronous; jobs belong to their project; failures and enormous results end the job with
//! their code; expired results are 410.
//!
//! The upstream is a [`HeldUpstream`]. A job's end is recorded just after its upstream
//! answers, so tests poll the job until its state changes: each poll is a request, none
//! waits for a clock.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use portico_gateway::jobs::Jobs;
use portico_store::{JobEnd, JobState, KeptResponse, NewJob, SqliteStore, Store, new_id};
use portico_testkit::{HeldUpstream, RawResponse, TestGateway, assert_error, closed_port};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ALICE_KEY: &str = "alice-key-0123456789abcdef";
const OSCAR_KEY: &str = "oscar-key-0123456789abcdef";

fn config(upstream: std::net::SocketAddr, settings: &str) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
projects:
  - {{id: {ACME}, name: acme, consumers: [{{name: alice, api_keys: ["{ALICE_KEY}"]}}]}}
  - {{id: {OTHER}, name: other, consumers: [{{name: oscar, api_keys: ["{OSCAR_KEY}"]}}]}}
routes:
  - name: exports
    path: "/v1/{{project_id}}/exports"
    methods: [GET, POST]
    upstream: up
    auth: api_key
    async: {settings}
"#
    )
}

/// A gateway whose jobs are kept in a SQLite store of its own; the store too, for tests
/// that plant jobs in it.
async fn start(yaml: &str) -> (TestGateway, Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("jobs.db")).await.unwrap());
    let jobs = Arc::new(Jobs::new(store.clone(), "test-node", 1 << 30));
    let gw = TestGateway::start_with(yaml, move |g| g.with_jobs(jobs)).await;
    (gw, store, dir)
}

fn request(method: &str, target: &str, key: &str, extra: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: h\r\nX-Api-Key: {key}\r\n{extra}Content-Length: 2\r\n\r\n{{}}"
    )
}

fn get(target: &str, key: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\nX-Api-Key: {key}\r\n{extra}\r\n")
}

/// ACME's POST (with `query`) sent on a connection of its own, its answer still to read.
async fn begin_export(gw: &TestGateway, query: &str) -> portico_testkit::RawClient {
    let mut c = gw.connect().await;
    c.send(request(
        "POST",
        &format!("/v1/{ACME}/exports{query}"),
        ALICE_KEY,
        "",
    ))
    .await;
    c
}

/// ACME's POST with `Prefer: respond-async`: the job's location (from its 202).
async fn submit(gw: &TestGateway) -> String {
    let accepted = gw.request(&respond_async()).await;
    assert_eq!(accepted.status, 202);
    accepted.header("location").unwrap().to_string()
}

fn respond_async() -> String {
    request(
        "POST",
        &format!("/v1/{ACME}/exports"),
        ALICE_KEY,
        "Prefer: respond-async\r\n",
    )
}

/// Polls the job at `location` until it is over; the 303.
async fn until_finished(gw: &TestGateway, location: &str) -> RawResponse {
    for _ in 0..100_000 {
        let resp = gw.request(&get(location, ALICE_KEY, "")).await;
        if resp.status != 200 {
            return resp;
        }
        assert!(matches!(
            resp.json()["state"].as_str(),
            Some("pending" | "running")
        ));
        tokio::task::yield_now().await;
    }
    panic!("the job never finished");
}

#[tokio::test]
async fn an_answer_within_the_sync_window_is_relayed_as_usual() {
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 30s}")).await;
    let mut c = begin_export(&gw, "").await;
    let held = up.next().await;
    assert_eq!(held.received.body, b"{}");
    held.answer("HTTP/1.1 201 Created\r\nLocation: /exports/9\r\nContent-Length: 4\r\n\r\nmade");
    let resp = c.response().await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"made");
}

#[tokio::test]
async fn a_late_answer_makes_a_job_that_is_polled_to_its_result() {
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 200ms}")).await;
    let mut c = begin_export(&gw, "").await;
    let held = up.next().await;
    // The upstream is slow: past the window the client has a job.
    let accepted = c.response().await;
    assert_eq!(accepted.status, 202);
    let location = accepted.header("location").unwrap().to_string();
    assert!(
        location.starts_with(&format!("/v1/{ACME}/jobs/")),
        "{location}"
    );
    assert_eq!(accepted.json()["state"], "running");
    let job = gw.request(&get(&location, ALICE_KEY, "")).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.json()["state"], "running");
    assert!(job.json()["created_at"].as_str().unwrap().ends_with('Z'));
    // Nothing is ready yet.
    let early = gw
        .request(&get(&format!("{location}/result"), ALICE_KEY, ""))
        .await;
    assert_error(&early, 404, "PTC.JOB_RESULT_NOT_READY");
    // The upstream answers: the job is over, and points to its result.
    held.answer("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nX-Rows: 2\r\nContent-Length: 12\r\n\r\na,b\n1,2\n3,4\n");
    let done = until_finished(&gw, &location).await;
    assert_eq!(done.status, 303);
    let result = format!("{location}/result");
    assert_eq!(done.header("location"), Some(result.as_str()));
    assert_eq!(done.json()["state"], "succeeded");
    let resp = gw.request(&get(&result, ALICE_KEY, "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"a,b\n1,2\n3,4\n");
    assert_eq!(resp.header("content-type"), Some("text/csv"));
    assert_eq!(resp.header("x-rows"), Some("2"));
    assert_eq!(resp.header("accept-ranges"), Some("bytes"));
    let etag = resp.header("etag").unwrap().to_string();
    // The semantics core answers conditional and range requests on it.
    let resp = gw
        .request(&get(
            &result,
            ALICE_KEY,
            &format!("If-None-Match: {etag}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    let resp = gw
        .request(&get(&result, ALICE_KEY, "Range: bytes=4-6\r\n"))
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, b"1,2");
    assert_eq!(resp.header("content-range"), Some("bytes 4-6/12"));
    let resp = gw
        .request(&get(&result, ALICE_KEY, "Range: bytes=50-\r\n"))
        .await;
    assert_error(&resp, 416, "PTC.RANGE_NOT_SATISFIABLE");
    assert_eq!(resp.header("content-range"), Some("bytes */12"));
    let resp = gw
        .request(&get(&result, ALICE_KEY, "If-Match: \"other\"\r\n"))
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
}

#[tokio::test]
async fn prefer_respond_async_is_202_at_once_and_other_statuses_replay_as_they_were() {
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 30s}")).await;
    let accepted = gw
        .request(&request(
            "POST",
            &format!("/v1/{ACME}/exports"),
            ALICE_KEY,
            "Prefer: respond-async, wait=100\r\n",
        ))
        .await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.json()["state"], "pending");
    let location = accepted.header("location").unwrap().to_string();
    // The request still reaches the upstream, after its client was answered.
    up.next()
        .await
        .answer("HTTP/1.1 201 Created\r\nLocation: /exports/1\r\nContent-Length: 2\r\n\r\nok");
    let done = until_finished(&gw, &location).await;
    assert_eq!(done.status, 303);
    let resp = gw
        .request(&get(&format!("{location}/result"), ALICE_KEY, ""))
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("location"), Some("/exports/1"));
    assert_eq!(resp.body, b"ok");
}

#[tokio::test]
async fn a_client_deadline_keeps_the_request_synchronous() {
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 100ms}")).await;
    let mut c = begin_export(&gw, "?timeout=400ms").await;
    let held = up.next().await;
    // Past the sync window, before the deadline: no job; at the deadline: 504.
    assert_error(&c.response().await, 504, "PTC.DEADLINE_EXCEEDED");
    held.cancelled().await;
}

#[tokio::test]
async fn jobs_belong_to_their_project() {
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 1s}")).await;
    let location = submit(&gw).await;
    let id = location.rsplit('/').next().unwrap();
    // The same auth as the route: none is 401, another project's caller is 403 ...
    let resp = gw
        .request(&format!("GET {location} HTTP/1.1\r\nHost: h\r\n\r\n"))
        .await;
    assert_eq!(resp.status, 401);
    let resp = gw.request(&get(&location, OSCAR_KEY, "")).await;
    assert_error(&resp, 403, "PTC.PROJECT_MISMATCH");
    // ... and in its own project, the other project's job does not exist.
    for target in [
        format!("/v1/{OTHER}/jobs/{id}"),
        format!("/v1/{OTHER}/jobs/{id}/result"),
        format!("/v1/{OTHER}/jobs/{}", new_id()),
        format!("/v1/{OTHER}/jobs/not-an-id"),
    ] {
        let resp = gw.request(&get(&target, OSCAR_KEY, "")).await;
        assert_error(&resp, 404, "PTC.JOB_NOT_FOUND");
    }
    // Jobs are read, not written.
    let resp = gw.request(&request("POST", &location, ALICE_KEY, "")).await;
    assert_eq!(resp.status, 405);
    up.next().await.ok("done");
    assert_eq!(until_finished(&gw, &location).await.status, 303);
}

#[tokio::test]
async fn a_job_that_fails_has_its_error_as_its_result() {
    let closed = closed_port().await;
    let (gw, _store, _dir) = start(&config(closed, "{sync_wait: 1s}")).await;
    let location = submit(&gw).await;
    let done = until_finished(&gw, &location).await;
    assert_eq!(done.status, 303);
    assert_eq!(done.json()["state"], "failed");
    assert_eq!(done.json()["error_code"], "PTC.UPSTREAM_CONNECT_REFUSED");
    let resp = gw
        .request(&get(&format!("{location}/result"), ALICE_KEY, ""))
        .await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
}

#[tokio::test]
async fn an_enormous_result_fails_its_job_and_is_not_kept() {
    let mut up = HeldUpstream::start().await;
    let (gw, store, _dir) = start(&config(up.addr, "{max_result_bytes: 1KiB}")).await;
    let location = submit(&gw).await;
    let big = "x".repeat(100_000);
    up.next().await.answer(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    ));
    let done = until_finished(&gw, &location).await;
    assert_eq!(done.json()["error_code"], "PTC.JOB_RESULT_TOO_LARGE");
    let resp = gw
        .request(&get(&format!("{location}/result"), ALICE_KEY, ""))
        .await;
    assert_error(&resp, 502, "PTC.JOB_RESULT_TOO_LARGE");
    assert_eq!(store.job_bytes(0).await.unwrap(), 0);
}

#[tokio::test]
async fn after_its_retention_a_result_is_gone() {
    let up = HeldUpstream::start().await;
    let (gw, store, _dir) = start(&config(up.addr, "{sync_wait: 1s}")).await;
    // A job that finished long ago, planted in the store: its retention ended a minute ago.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let job = NewJob {
        id: new_id(),
        project: ACME.into(),
        route: "exports".into(),
        node: "gone".into(),
        state: JobState::Running,
        now_ms: now - 3_600_000,
        lease_ms: 30_000,
        expires_ms: now - 60_000,
        forget_ms: now + 3_600_000,
    };
    store.create_job(&job).await.unwrap();
    let end = JobEnd::Succeeded {
        response: KeptResponse {
            status: 200,
            head: Vec::new(),
            body: Some(b"old".to_vec()),
        },
        etag: "\"old\"".into(),
    };
    store
        .finish_job(&job.id, &end, now - 3_000_000)
        .await
        .unwrap();
    let location = format!("/v1/{ACME}/jobs/{}", job.id);
    for target in [location.clone(), format!("{location}/result")] {
        let resp = gw.request(&get(&target, ALICE_KEY, "")).await;
        assert_error(&resp, 410, "PTC.JOB_EXPIRED");
    }
}

/// A store that fails: a job cannot be recorded (`Prefer: respond-async` is 503 and nothing
/// is sent on; past the sync window the client waits for the answer instead), nor read (503);
/// once the server is back, so are jobs.
#[tokio::test]
async fn a_store_that_fails_is_503_or_a_synchronous_answer() {
    let Some(db) = portico_testkit::pg::Scratch::create("jobs_fail").await else {
        return;
    };
    let store = Arc::new(
        portico_store::PgStore::connect(&db.url, None)
            .await
            .unwrap(),
    );
    let mut up = HeldUpstream::start().await;
    let jobs = Arc::new(Jobs::new(store.clone(), "test-node", 1 << 30));
    let gw = TestGateway::start_with(&config(up.addr, "{sync_wait: 100ms}"), move |g| {
        g.with_jobs(jobs)
    })
    .await;
    let location = submit(&gw).await;
    up.next().await.ok("kept");
    assert_eq!(until_finished(&gw, &location).await.status, 303);
    db.refuse_connections().await;
    let resp = gw.request(&get(&location, ALICE_KEY, "")).await;
    assert_error(&resp, 503, "PTC.JOBS_UNAVAILABLE");
    assert_eq!(resp.header("retry-after"), Some("1"));
    let resp = gw.request(&respond_async()).await;
    assert_error(&resp, 503, "PTC.JOBS_UNAVAILABLE");
    // Past the window, no job can be made: the answer comes when the upstream gives it.
    let mut c = begin_export(&gw, "").await;
    let held = up.next().await;
    assert_eq!(held.received.body, b"{}");
    held.ok("late but here");
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"late but here");
    // The server is back: so are jobs.
    db.allow_connections().await;
    let resp = gw.request(&get(&location, ALICE_KEY, "")).await;
    assert_eq!(resp.status, 303);
    let next = submit(&gw).await;
    up.next().await.ok("again");
    assert_eq!(until_finished(&gw, &next).await.status, 303);
    db.drop_database().await;
}

#[tokio::test]
async fn http2_clients_make_poll_and_read_jobs_the_same_way() {
    use portico_testkit::h2::{client, request as h2_request, send};
    let mut up = HeldUpstream::start().await;
    let (gw, _store, _dir) = start(&config(up.addr, "{sync_wait: 100ms}")).await;
    let mut h2 = client(gw.addr).await;
    let exports = format!("http://h/v1/{ACME}/exports");
    let pending = {
        let mut h2 = h2.clone();
        tokio::spawn(async move {
            send(
                &mut h2,
                h2_request("POST", &exports, &[("x-api-key", ALICE_KEY)]),
                Some(b"{}"),
            )
            .await
        })
    };
    let held = up.next().await;
    assert_eq!(held.received.body, b"{}");
    // Past the window, on HTTP/2 too, the answer is a job.
    let accepted = pending.await.unwrap();
    assert_eq!(accepted.status(), 202);
    let location = accepted.header("location").unwrap().to_string();
    held.answer(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n0123456789",
    );
    assert_eq!(until_finished(&gw, &location).await.status, 303);
    let resp = send(
        &mut h2,
        h2_request(
            "GET",
            &format!("http://h{location}/result"),
            &[("x-api-key", ALICE_KEY), ("range", "bytes=2-4")],
        ),
        None,
    )
    .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.body[..], b"234");
    let resp = send(
        &mut h2,
        h2_request(
            "GET",
            &format!("http://h/v1/{OTHER}/jobs/{}", new_id()),
            &[("x-api-key", OSCAR_KEY)],
        ),
        None,
    )
    .await;
    resp.assert_error(404, "PTC.JOB_NOT_FOUND");
}

#[tokio::test]
async fn a_job_holds_its_place_under_max_in_flight_until_its_upstream_answers() {
    let mut up = HeldUpstream::start().await;
    let yaml = config(up.addr, "{sync_wait: 1s}") + "    max_in_flight: 1\n";
    let (gw, _store, _dir) = start(&yaml).await;
    let location = submit(&gw).await;
    let held = up.next().await;
    // The first job is still at the upstream: a second request is one too many, 202 or not.
    let resp = gw.request(&respond_async()).await;
    assert_error(&resp, 429, "PTC.CONCURRENCY_LIMITED");
    held.ok("first");
    assert_eq!(until_finished(&gw, &location).await.status, 303);
    // Its answer is in: the place is free again.
    let next = submit(&gw).await;
    up.next().await.ok("second");
    assert_eq!(until_finished(&gw, &next).await.status, 303);
}

#[tokio::test]
async fn polling_a_job_takes_nothing_from_the_projects_quota() {
    let mut up = HeldUpstream::start().await;
    let yaml = format!(
        "plans:\n  - {{name: small, quota: {{requests: 2, period: month}}}}\n{}",
        config(up.addr, "{sync_wait: 1s}").replace("name: acme,", "name: acme, plan: small,")
    );
    let (gw, _store, _dir) = start(&yaml).await;
    let location = submit(&gw).await;
    up.next().await.ok("one");
    // Polled until over, then read over and over: none of it is a request to pay for.
    assert_eq!(until_finished(&gw, &location).await.status, 303);
    for _ in 0..5 {
        let resp = gw
            .request(&get(&format!("{location}/result"), ALICE_KEY, ""))
            .await;
        assert_eq!(resp.status, 200);
    }
    // The second request the quota allows, then 402.
    let second = submit(&gw).await;
    up.next().await.ok("two");
    assert_eq!(until_finished(&gw, &second).await.status, 303);
    let resp = gw.request(&respond_async()).await;
    assert_error(&resp, 402, "PTC.QUOTA_SPENT");
}
