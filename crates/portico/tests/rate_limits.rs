//! Route rate limits over real sockets, with a clock the test moves by hand (nothing sleeps):
//! 429 with the exact `Retry-After`, `RateLimit-Policy` and `RateLimit` on every answer of a
//! limited route, keys per address, project and consumer, decided before `100 Continue`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use portico_gateway::limits::{ManualClock, MonotonicClock, RateLimiters};
use portico_store::RedisLimits;
use portico_testkit::{MockUpstream, Reply, TestGateway, UpstreamConn, assert_error};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ALICE_KEY: &str = "alice-key-0123456789abcdef";
const BOB_KEY: &str = "bob-key-0123456789abcdef";

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
projects:
  - id: {ACME}
    name: acme
    consumers:
      - {{name: alice, api_keys: ["{ALICE_KEY}"]}}
      - {{name: bob, api_keys: ["{BOB_KEY}"]}}
  - {{id: {OTHER}, name: other}}
routes:
  - name: by-ip
    path: /ip
    methods: [GET, POST]
    upstream: up
    rate_limit: {{key: ip, rate: 2/s}}
  - name: slow
    path: /slow
    methods: [GET]
    upstream: up
    rate_limit: {{key: route, rate: 1/m}}
  - name: by-project
    path: /v1/{{project_id}}/things
    methods: [GET]
    upstream: up
    rate_limit: [{{key: project, rate: 1/s}}, {{key: ip, rate: 100/s, burst: 50, name: everyone}}]
  - name: by-consumer
    path: /v1/{{project_id}}/mine
    methods: [GET]
    upstream: up
    auth: api_key
    rate_limit: {{key: consumer, rate: 1/h}}
"#
    )
}

async fn start() -> (TestGateway, MockUpstream, Arc<ManualClock>) {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let clock = Arc::new(ManualClock::default());
    let registry = RateLimiters::new(clock.clone());
    let gw = TestGateway::start_with(&config(up.addr), |g| g.with_rate_limiters(registry)).await;
    (gw, up, clock)
}

fn get(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n{fields}\r\n")
}

#[tokio::test]
async fn a_burst_then_429_with_the_exact_retry_after_and_ratelimit_fields() {
    let (gw, _up, clock) = start().await;
    for remaining in ["1", "0"] {
        let resp = gw.request(&get("/ip", "")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("ratelimit-policy"), Some("\"ip\";q=2;w=1"));
        assert_eq!(
            resp.header("ratelimit"),
            Some(format!("\"ip\";r={remaining};t=1").as_str())
        );
    }
    let resp = gw.request(&get("/ip", "")).await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    // Two per second: the next is admitted half a second from now, which is 1 s rounded up.
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.header("ratelimit"), Some("\"ip\";r=0;t=1"));
    assert_eq!(resp.header("ratelimit-policy"), Some("\"ip\";q=2;w=1"));
    clock.advance(Duration::from_millis(499));
    assert_eq!(gw.request(&get("/ip", "")).await.status, 429);
    clock.advance(Duration::from_millis(1));
    assert_eq!(gw.request(&get("/ip", "")).await.status, 200);
}

#[tokio::test]
async fn retry_after_counts_down_to_the_moment_of_admission_and_is_never_0() {
    let (gw, _up, clock) = start().await;
    assert_eq!(gw.request(&get("/slow", "")).await.status, 200);
    let resp = gw.request(&get("/slow", "")).await;
    assert_eq!(resp.header("retry-after"), Some("60"));
    clock.advance(Duration::from_millis(59_500));
    let resp = gw.request(&get("/slow", "")).await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    assert_eq!(resp.header("retry-after"), Some("1"));
    clock.advance(Duration::from_millis(500));
    assert_eq!(gw.request(&get("/slow", "")).await.status, 200);
}

#[tokio::test]
async fn projects_and_consumers_each_have_their_own_budget() {
    let (gw, _up, _clock) = start().await;
    let things = |p: &str| get(&format!("/v1/{p}/things"), "");
    let resp = gw.request(&things(ACME)).await;
    assert_eq!(resp.status, 200);
    // Two limits, both reported.
    assert_eq!(
        resp.header("ratelimit-policy"),
        Some("\"project\";q=1;w=1, \"everyone\";q=50;w=1")
    );
    assert_eq!(
        resp.header("ratelimit"),
        Some("\"project\";r=0;t=1, \"everyone\";r=49;t=1")
    );
    assert_error(&gw.request(&things(ACME)).await, 429, "PTC.RATE_LIMITED");
    assert_eq!(gw.request(&things(OTHER)).await.status, 200);

    let mine = |key: &str| {
        get(
            &format!("/v1/{ACME}/mine"),
            &format!("X-Api-Key: {key}\r\n"),
        )
    };
    assert_eq!(gw.request(&mine(ALICE_KEY)).await.status, 200);
    let resp = gw.request(&mine(ALICE_KEY)).await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    assert_eq!(resp.header("retry-after"), Some("3600"));
    assert_eq!(gw.request(&mine(BOB_KEY)).await.status, 200);
    // A caller that fails authentication is refused for that, not counted.
    let resp = gw.request(&mine("wrong-key-0123456789abcdef")).await;
    assert_error(&resp, 401, "PTC.API_KEY_UNKNOWN");
}

#[tokio::test]
async fn a_limited_request_is_refused_before_100_continue_and_the_upstream() {
    let (gw, mut up, _clock) = start().await;
    for _ in 0..2 {
        assert_eq!(gw.request(&get("/ip", "")).await.status, 200);
        up.next().await;
    }
    let mut c = gw.connect().await;
    c.send("POST /ip HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    // The first thing back is the 429, not an interim 100.
    let resp = c.response().await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    assert!(up.received.try_recv().is_err());
}

fn shared_config(route: &str) -> String {
    format!(
        r#"
routes:
  - {{name: {route}, path: /shared, methods: [GET], handler: echo, rate_limit: {{key: route, rate: 1/h}}}}
  - {{name: open-when-down, path: /allow, methods: [GET], handler: echo, rate_limit: {{key: ip, rate: 1/h}}}}
  - {{name: closed-when-down, path: /deny, methods: [GET], handler: echo, rate_limit: {{key: ip, rate: 1/h, on_store_failure: deny}}}}
"#
    )
}

async fn shared_gateway(redis: &str, route: &str) -> (TestGateway, Arc<RateLimiters>) {
    let store = RedisLimits::new(redis, Duration::from_millis(200)).unwrap();
    let registry = RateLimiters::shared(Arc::new(MonotonicClock::default()), Arc::new(store));
    let r = registry.clone();
    let gw = TestGateway::start_with(&shared_config(route), |g| g.with_rate_limiters(r)).await;
    (gw, registry)
}

#[tokio::test]
async fn when_the_shared_store_is_down_each_limit_does_what_it_declares() {
    let closed = portico_testkit::closed_port().await;
    let (gw, registry) = shared_gateway(&format!("redis://{closed}"), "shared").await;
    // `allow` (the default): served as if the limit were not there, twice over a 1/h limit.
    for _ in 0..2 {
        let resp = gw.request(&get("/allow", "")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("ratelimit"), Some(""));
    }
    // `deny`: 503 with Retry-After.
    let resp = gw.request(&get("/deny", "")).await;
    assert_error(&resp, 503, "PTC.RATE_LIMIT_STORE_UNAVAILABLE");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(registry.store_failures(), 3);
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_each_limit() {
    let Ok(url) = std::env::var("PORTICO_TEST_REDIS_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PORTICO_TEST_REDIS_URL is not set; .ci/run sets it"
        );
        eprintln!("PORTICO_TEST_REDIS_URL is not set: shared limits not tested");
        return;
    };
    // A route name of this run's own, so that no earlier run's state is in the way.
    let route = format!("shared-{}", &portico_store::new_id()[..12]);
    let (a, _) = shared_gateway(&url, &route).await;
    let (b, registry) = shared_gateway(&url, &route).await;
    let resp = a.request(&get("/shared", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("ratelimit"), Some("\"route\";r=0;t=3600"));
    // The other node knows: one an hour, and it was taken.
    let resp = b.request(&get("/shared", "")).await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    assert_eq!(registry.store_failures(), 0);
}

#[tokio::test]
async fn max_in_flight_refuses_one_too_many_until_a_place_is_free() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{addr}"], max_in_flight: 2}}
routes:
  - {{name: one, path: /one, methods: [GET], upstream: up, max_in_flight: 1}}
  - {{name: two, path: /two, methods: [GET], upstream: up}}
"#
    ))
    .await;
    let accept = || async {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = UpstreamConn::new(stream);
        conn.read_request().await.unwrap();
        conn
    };
    // A request on /one, held at the upstream: the route is full.
    let mut a = gw.connect().await;
    a.send("GET /one HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let mut held_a = accept().await;
    let resp = gw.request(&get("/one", "")).await;
    assert_error(&resp, 429, "PTC.CONCURRENCY_LIMITED");
    assert_eq!(resp.header("retry-after"), Some("1"));
    // /two shares the upstream, which has room for two: one more fits, a third does not.
    let mut b = gw.connect().await;
    b.send("GET /two HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let mut held_b = accept().await;
    let resp = gw.request(&get("/two", "")).await;
    assert_error(&resp, 429, "PTC.CONCURRENCY_LIMITED");
    // The first answer comes; once its exchange is over (its log line), /one has room again.
    held_a
        .write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\na")
        .await
        .unwrap();
    assert_eq!(a.response().await.status, 200);
    loop {
        let line = gw.next_log().await;
        if line["route"] == "one" && line["status"] == 200 {
            break;
        }
    }
    let mut c = gw.connect().await;
    c.send("GET /one HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let mut held_c = accept().await;
    for (held, client) in [(&mut held_b, &mut b), (&mut held_c, &mut c)] {
        held.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
            .await
            .unwrap();
        assert_eq!(client.response().await.status, 200);
    }
}

#[tokio::test]
async fn a_plans_limits_apply_to_its_projects_on_every_route() {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let registry = RateLimiters::new(Arc::new(ManualClock::default()));
    let gw = TestGateway::start_with(
        &format!(
            r#"
upstreams:
  - {{name: up, targets: ["http://{}"]}}
plans:
  - {{name: small, rate_limits: [{{key: project, rate: 1/h, name: plan}}]}}
projects:
  - {{id: {ACME}, name: acme, plan: small}}
  - {{id: {OTHER}, name: other}}
routes:
  - {{name: a, path: "/v1/{{project_id}}/a", methods: [GET], upstream: up}}
  - {{name: b, path: "/v1/{{project_id}}/b", methods: [GET], upstream: up}}
"#,
            up.addr
        ),
        |g| g.with_rate_limiters(registry),
    )
    .await;
    let resp = gw.request(&get(&format!("/v1/{ACME}/a"), "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("ratelimit-policy"), Some("\"plan\";q=1;w=3600"));
    // Another route, the same project: the plan's budget is spent.
    let resp = gw.request(&get(&format!("/v1/{ACME}/b"), "")).await;
    assert_error(&resp, 429, "PTC.RATE_LIMITED");
    assert_eq!(resp.header("retry-after"), Some("3600"));
    // A project on another plan is not limited.
    for _ in 0..2 {
        let resp = gw.request(&get(&format!("/v1/{OTHER}/b"), "")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("ratelimit"), None);
    }
}
