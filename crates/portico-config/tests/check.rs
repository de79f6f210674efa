//! Configuration reading as `check-config` sees it: whole files in, every problem out.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use portico_config::{AccessLog, Answer, BuiltIn, Transport, VersionState, from_str};
use portico_http::Method;

const FULL: &str = r#"
listen: 127.0.0.1:8080
limits:                       # server-wide; a route may override max_body_bytes
  max_uri_bytes: 8192
  max_header_bytes: 32768
  header_timeout: 10s         # whole request head must arrive within this
  body_timeout: 30s           # no body progress for this long
  max_body_bytes: 10MiB
upstreams:
  - name: items
    targets: ["http://127.0.0.1:9000"]
routes:
  - name: items
    path: /v1/{project_id}/items/{*rest}   # {name}: one segment; {*name}: the rest
    methods: [GET, POST, PUT, DELETE]
    upstream: items                         # or `handler: echo`
    max_body_bytes: 1MiB
    require_content_length: false           # true: chunked bodies get 411
"#;

#[test]
fn the_documented_example_is_valid() {
    let c = from_str(FULL, "full.yaml").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits.head.max_uri_bytes, 8192);
    assert_eq!(c.limits.head.max_header_bytes, 32768);
    assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.body_timeout, Duration::from_secs(30));
    assert_eq!(c.limits.max_body_bytes, 10 << 20);
    assert_eq!(c.upstreams[0].targets[0].authority, "127.0.0.1:9000");
    let r = &c.routes[0];
    assert_eq!(r.answer, Answer::Upstream(0));
    assert_eq!(r.max_body_bytes, Some(1 << 20));
    assert!(r.methods.allows(Method::Delete) && !r.methods.allows(Method::Patch));
    assert!(!r.require_content_length);
    assert_eq!(c.access_log, AccessLog::Stdout);
}

#[test]
fn the_example_in_the_configuration_reference_is_valid() {
    let doc = include_str!("../../../docs/config.md");
    let example = doc
        .find("## A complete example")
        .expect("the example section");
    let start =
        example + doc[example..].find("```yaml\n").expect("a YAML example") + "```yaml\n".len();
    let yaml = &doc[start..start + doc[start..].find("```").unwrap()];
    // Its static root is relative to the file, so the file goes next to one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static-site")).unwrap();
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, yaml).unwrap();
    let c = portico_config::load(&path).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.routes[0].produces[0].to_string(), "application/json");
    assert!(matches!(
        c.routes[1].answer,
        Answer::BuiltIn(BuiltIn::Static(_))
    ));
    assert!(matches!(&c.routes[2].answer, Answer::Redirect(r) if r.status == 308));
}

#[test]
fn every_problem_is_reported_at_once_with_its_location() {
    let src = r#"
listen: localhost
limits:
  max_body_bytes: 10MB
  header_timeot: 10s
upstreams:
  - name: items
    targets: ["ftp://127.0.0.1:9000"]
routes:
  - name: a
    path: v1/items
    methods: [GET, FETCH]
    upstream: nowhere
  - name: b
    path: /echo
    methods: [GET]
    handler: echo
    require_content_length: yes
"#;
    let problems = from_str(src, "bad.yaml").unwrap_err();
    let text = problems.to_string();
    let expected = [
        "bad.yaml:2:9: listen: `localhost` is not an IP address and port",
        "bad.yaml:4:19: limits.max_body_bytes: invalid size `10MB`",
        "bad.yaml:5:3: limits.header_timeot: unknown key `header_timeot` (did you mean `header_timeout`?)",
        "bad.yaml:8:15: upstreams[0].targets[0]: `ftp://127.0.0.1:9000`",
        "bad.yaml:11:11: routes[0].path: a path must start with `/`",
        "bad.yaml:12:20: routes[0].methods[1]: unknown method `FETCH`",
        "bad.yaml:13:15: routes[0].upstream: unknown upstream `nowhere`",
        "bad.yaml:18:29: routes[1].require_content_length: expected `true` or `false`",
    ];
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    assert_eq!(problems.list.len(), expected.len(), "{text}");
}

#[test]
fn missing_and_conflicting_keys_are_reported() {
    let src = "routes:\n  - name: a\n    path: /a\n  - name: a\n    path: /b\n    methods: [GET]\n    upstream: x\n    handler: echo\n";
    let text = from_str(src, "c.yaml").unwrap_err().to_string();
    assert!(
        text.contains("routes[0].methods: missing required key `methods`"),
        "{text}"
    );
    assert!(
        text.contains("routes[0]: a route needs `upstream`, `handler`, `redirect` or `use_proxy`"),
        "{text}"
    );
    assert!(
        text.contains(
            "routes[1].handler: a route has one of `upstream`, `handler`, `redirect` or `use_proxy`, not several"
        ),
        "{text}"
    );
    assert!(
        from_str("listen: 127.0.0.1:1\n", "d.yaml")
            .unwrap_err()
            .to_string()
            .contains("missing required key `routes`")
    );
    assert!(
        from_str("- a\n", "e.yaml")
            .unwrap_err()
            .to_string()
            .contains("expected a mapping")
    );
}

#[test]
fn overlapping_routes_are_refused() {
    let base = "routes:\n  - {name: a, path: '/x/{id}', methods: [GET, POST], handler: echo}\n";
    let same =
        format!("{base}  - {{name: b, path: '/x/{{id}}', methods: [POST], handler: echo}}\n");
    let text = from_str(&same, "o.yaml").unwrap_err().to_string();
    assert!(text.contains("overlaps route `a`"), "{text}");
    // Same template, disjoint methods: fine.
    let ok =
        format!("{base}  - {{name: b, path: '/x/{{id}}', methods: [DELETE], handler: echo}}\n");
    assert!(from_str(&ok, "o.yaml").is_ok());
    // Different names for one parameter position: ambiguous to the router.
    let renamed =
        format!("{base}  - {{name: b, path: '/x/{{other}}', methods: [DELETE], handler: echo}}\n");
    assert!(
        from_str(&renamed, "o.yaml")
            .unwrap_err()
            .to_string()
            .contains("conflicts")
    );
    let twice = format!("{base}  - {{name: a, path: '/y', methods: [GET], handler: echo}}\n");
    assert!(
        from_str(&twice, "o.yaml")
            .unwrap_err()
            .to_string()
            .contains("defined twice")
    );
}

#[test]
fn max_connections_is_a_positive_count() {
    let ok = from_str(
        "limits: {max_connections: 20}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "m.yaml",
    )
    .unwrap();
    assert_eq!(ok.limits.max_connections, 20);
    let text = from_str(
        "limits: {max_connections: 0}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "m.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("limits.max_connections: must be at least 1"),
        "{text}"
    );
}

#[test]
fn the_plain_listener_speaks_both_protocols_or_http2_only() {
    const ROUTES: &str = "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n";
    let read = |http2: &str| from_str(&format!("http2: {http2}\n{ROUTES}"), "h.yaml");
    assert!(!from_str(ROUTES, "h.yaml").unwrap().http2.cleartext_only);
    assert!(!read("{cleartext: both}").unwrap().http2.cleartext_only);
    assert!(read("{cleartext: only}").unwrap().http2.cleartext_only);
    let text = read("{cleartext: h2c}").unwrap_err().to_string();
    assert!(
        text.contains("http2.cleartext: `h2c` is not `both` or `only`"),
        "{text}"
    );
    let text = read("{enabled: false, cleartext: only}")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("http2.cleartext: `only` needs HTTP/2 enabled"),
        "{text}"
    );
}

#[test]
fn buffered_routes_fit_the_body_budget() {
    let base = "upstreams:\n  - {name: up, targets: [\"http://127.0.0.1:9\"]}\nroutes:\n";
    let ok = from_str(
        &format!("limits: {{body_buffer_bytes: 2MiB}}\n{base}  - {{name: a, path: /a, methods: [POST], upstream: up, buffer_body: true, max_body_bytes: 1MiB}}\n"),
        "b.yaml",
    )
    .unwrap();
    assert!(ok.routes[0].buffer_body);
    assert_eq!(ok.limits.body_buffer_bytes, 2 << 20);
    // A route whose bodies could never fit, and buffer_body on a route that does not proxy.
    let text = from_str(
        &format!("limits: {{body_buffer_bytes: 1MiB}}\n{base}  - {{name: a, path: /a, methods: [POST], upstream: up, buffer_body: true}}\n  - {{name: e, path: /e, methods: [POST], handler: echo, buffer_body: true}}\n"),
        "b.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("routes[0].buffer_body: this route takes bodies up to 10485760 bytes but limits.body_buffer_bytes is 1048576"), "{text}");
    assert!(
        text.contains("routes[1].buffer_body: `buffer_body` is for routes with an `upstream`"),
        "{text}"
    );
}

#[test]
fn websocket_routes_proxy_a_get() {
    let base = "upstreams:\n  - {name: up, targets: [\"http://127.0.0.1:9\"]}\nroutes:\n";
    let ok = from_str(
        &format!("{base}  - {{name: ws, path: /ws, methods: [GET], upstream: up, websocket: true}}\n  - {{name: ws2, path: /ws2, methods: [GET], upstream: up, websocket: true, websocket_idle_timeout: 30s}}\n  - {{name: http, path: /h, methods: [GET], upstream: up}}\n"),
        "w.yaml",
    )
    .unwrap();
    assert_eq!(ok.routes[0].websocket, Some(Duration::from_secs(300)));
    assert_eq!(ok.routes[1].websocket, Some(Duration::from_secs(30)));
    assert_eq!(ok.routes[2].websocket, None);
    let text = from_str(
        &format!("{base}  - {{name: a, path: /a, methods: [POST], upstream: up, websocket: true}}\n  - {{name: b, path: /b, methods: [GET], handler: echo, websocket: true}}\n  - {{name: c, path: /c, methods: [GET], upstream: up, websocket_idle_timeout: 5s}}\n"),
        "w.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].websocket: a WebSocket handshake is a GET",
        "routes[1].websocket: `websocket` is for routes with an `upstream`",
        "routes[2].websocket_idle_timeout: `websocket_idle_timeout` needs `websocket: true`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_admin_listener_and_storage_are_checked_and_the_token_not_kept() {
    let route = "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n";
    let ok = from_str(
        &format!("admin: {{listen: 127.0.0.1:9080, token: a-long-enough-admin-token}}\nstorage: postgres://db/portico\n{route}"),
        "a.yaml",
    )
    .unwrap();
    let admin = ok.admin.clone().unwrap();
    assert_eq!(admin.listen.port(), 9080);
    assert!(admin.token_sha256.is_some());
    assert_eq!(ok.storage, "postgres://db/portico");
    // Neither the token nor its digest shows when the configuration is printed.
    let printed = format!("{ok:?}");
    assert!(!printed.contains("a-long-enough-admin-token"), "{printed}");
    assert!(printed.contains("<redacted>"));
    assert_eq!(
        from_str(route, "a.yaml").unwrap().storage,
        "sqlite://portico.db"
    );

    let text = from_str(
        &format!("listen: 127.0.0.1:8080\nadmin: {{listen: 127.0.0.1:8080, token: short}}\nstorage: mysql://x\n{route}"),
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "admin.token: the admin token must be at least 16 characters",
        "storage: storage is `sqlite://PATH` or `postgres://…`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("short"),
        "the token is never repeated: {text}"
    );
    let text = from_str(
        &format!("listen: 127.0.0.1:8080\nadmin: {{listen: 127.0.0.1:8080}}\n{route}"),
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("admin.listen: 127.0.0.1:8080 is a data-plane listener"),
        "{text}"
    );
}

#[test]
fn apis_and_their_versions_are_checked() {
    let ok = from_str(
        "apis:\n  - name: compute\n    base_path: /compute\n    versions:\n      - {id: v2, status: published, maintenance: {start: \"2027-01-01T00:00:00Z\", end: \"2027-01-01T02:00:00+01:00\"}}\n      - {id: v1, status: deprecated, deprecated_at: \"2026-01-01T00:00:00Z\", sunset: \"2027-01-01T00:00:00Z\"}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap();
    let api = &ok.apis[0];
    assert_eq!(
        (api.name.as_str(), api.base_path.as_str()),
        ("compute", "/compute")
    );
    let w = api.versions[0].maintenance.unwrap();
    assert_eq!(w.end.duration_since(w.start).unwrap().as_secs(), 3600);
    assert!(matches!(
        api.versions[1].state,
        VersionState::Deprecated { .. }
    ));

    let text = from_str(
        "apis:\n  - name: a\n    base_path: /a/\n    versions: []\n  - name: b\n    base_path: /b\n    versions:\n      - {id: v1, status: deprecated}\n      - {id: v1, status: published}\n      - {id: v2, status: gone}\n      - {id: v3, status: published, sunset: \"2027-01-01T00:00:00Z\"}\n      - {id: v4, status: published, maintenance: {start: \"2027-01-02T00:00:00Z\", end: \"2027-01-01T00:00:00Z\"}}\n      - {id: v5, status: retired, maintenance: {start: tomorrow, end: \"2027-01-01T00:00:00Z\"}}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "apis[0].base_path: `/a/`: a base path is",
        "apis[0].versions: an API has at least one version",
        "apis[1].versions[0].status: a deprecated version needs `deprecated_at` and `sunset`",
        "apis[1].versions[2].status: unknown status `gone`",
        "apis[1].versions[3].sunset: `sunset` is for deprecated versions",
        "apis[1].versions[4].maintenance: a maintenance window ends after it starts",
        "apis[1].versions[5].maintenance.start: `tomorrow` is not a time like",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn redirect_routes_are_checked_against_their_path() {
    let ok = from_str(
        "routes:\n  - {name: a, path: \"/v1/{*rest}\", methods: [GET], redirect: {to: \"/v2/{*rest}\", status: 308}}\n  - {name: b, path: /b, methods: [GET], redirect: {to: \"https://example.com/\"}}\n",
        "r.yaml",
    )
    .unwrap();
    let Answer::Redirect(r) = &ok.routes[0].answer else {
        panic!("{:?}", ok.routes[0].answer)
    };
    assert_eq!((r.status, r.to.as_str()), (308, "/v2/{*rest}"));
    let Answer::Redirect(r) = &ok.routes[1].answer else {
        panic!("{:?}", ok.routes[1].answer)
    };
    assert_eq!(r.status, 301, "301 when no status is given");

    let text = from_str(
        "upstreams:\n  - {name: up, targets: [\"http://127.0.0.1:9\"]}\nroutes:\n  - {name: a, path: \"/a/{id}\", methods: [GET], redirect: {to: \"/b/{other}\"}}\n  - {name: b, path: /b, methods: [GET], redirect: {to: /c, status: 304}}\n  - {name: c, path: /c, methods: [GET], redirect: {status: 302}}\n  - {name: d, path: /d, methods: [GET], upstream: up, redirect: {to: /e}}\n  - {name: e, path: /e, methods: [GET], redirect: {to: \"//evil.example/\"}}\n",
        "r.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].redirect.to: `{other}` is not a parameter of the route's path `/a/{id}`",
        "routes[1].redirect.status: a redirect status is 301, 302, 303, 307 or 308",
        "routes[2].redirect.to: missing required key `to`",
        "routes[3].redirect: a route has one of `upstream`, `handler`, `redirect` or `use_proxy`, not several",
        "routes[4].redirect.to: `//evil.example/`: a redirect goes to a path",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn upstream_tls_and_http2_targets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "x").unwrap();
    let route = "routes:\n  - {name: a, path: /a, methods: [GET], upstream: up}\n";
    let ok = from_str(
        &format!(
            "upstreams:\n  - name: up\n    targets: [\"https://a.test\", \"h2c://127.0.0.1:9\"]\n    tls: {{ca: {}, server_name: api.test}}\n{route}",
            ca.display()
        ),
        "u.yaml",
    )
    .unwrap();
    let up = &ok.upstreams[0];
    assert_eq!(up.targets[0].transport, Transport::Https);
    assert_eq!(up.targets[1].transport, Transport::H2c);
    assert_eq!(up.tls.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(up.tls.server_name.as_deref(), Some("api.test"));

    let text = from_str(
        &format!(
            "upstreams:\n  - name: up\n    targets: [\"http://127.0.0.1:9\"]\n    tls: {{ca: {}}}\n  - name: h2\n    targets: [\"h2c://127.0.0.1:9\"]\n  - name: s\n    targets: [\"https://a.test\"]\n    tls: {{ca: {}, server_name: \"a b\"}}\n{route}  - {{name: ws, path: /ws, methods: [GET], upstream: h2, websocket: true}}\n",
            ca.display(),
            dir.path().join("nope.pem").display()
        ),
        "u.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "upstreams[0].tls: `tls` applies to `https://` targets and this upstream has none",
        "upstreams[2].tls.ca: cannot use",
        "upstreams[2].tls.server_name: `a b` is not a host name",
        "routes[1].websocket: WebSocket is relayed over HTTP/1.1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn tls_needs_its_own_port_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
    let route = "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n";
    let cert = dir.path().join("cert.pem");
    let ok = from_str(
        &format!(
            "tls: {{listen: 127.0.0.1:8443, cert: {}, key: {}}}\n{route}",
            cert.display(),
            cert.display()
        ),
        "t.yaml",
    )
    .unwrap();
    assert_eq!(ok.tls.unwrap().listen.port(), 8443);
    let text = from_str(
        &format!(
            "listen: 127.0.0.1:8443\ntls: {{listen: 127.0.0.1:8443, cert: {}, key: {}}}\n{route}",
            cert.display(),
            dir.path().join("nope.pem").display()
        ),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("tls.key: cannot use"), "{text}");
    let text = from_str(
        &format!(
            "listen: 127.0.0.1:8443\ntls: {{listen: 127.0.0.1:8443, cert: {}, key: {}}}\n{route}",
            cert.display(),
            cert.display()
        ),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("tls.listen: 127.0.0.1:8443 is also `listen`"),
        "{text}"
    );
}

#[test]
fn handler_and_defaults() {
    let c = from_str(
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "h.yaml",
    )
    .unwrap();
    assert_eq!(c.routes[0].answer, Answer::BuiltIn(BuiltIn::Echo));
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits, portico_config::Limits::default());
    let e = from_str(
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: files}\n",
        "h.yaml",
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("unknown handler `files`; available: echo, static")
    );
}

#[test]
fn static_routes_take_a_root_and_default_to_get() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "routes:\n  - name: site\n    path: /site/{{*file}}\n    handler: static\n    root: {}\n    cache_control: \"public, max-age=60\"\n    precompressed: [br, gzip]\n",
        dir.path().display()
    );
    let c = from_str(&src, "s.yaml").unwrap();
    let r = &c.routes[0];
    let Answer::BuiltIn(BuiltIn::Static(s)) = &r.answer else {
        panic!("{:?}", r.answer)
    };
    assert_eq!(s.root, dir.path());
    assert_eq!(s.cache_control.as_deref(), Some("public, max-age=60"));
    let names: Vec<&str> = s.precompressed.iter().map(|c| c.as_str()).collect();
    assert_eq!(names, ["br", "gzip"]);
    assert!(r.methods.allows(Method::Get) && r.methods.allows(Method::Head));
    assert!(!r.methods.allows(Method::Post));
    assert_eq!(r.path.catch_all.as_deref(), Some("file"));
}

#[test]
fn static_route_problems_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let src = format!(
        r#"
routes:
  - name: a
    path: /a
    methods: [GET, POST]
    handler: static
    root: {missing}
    precompressed: [deflate, br, br]
    cache_control: "bad\u0001value"
  - name: b
    path: /b/{{*f}}
    handler: static
    root: {file}
  - name: c
    path: /c
    methods: [GET]
    handler: echo
    root: /tmp
    cache_control: public
  - name: d
    path: /d/{{*f}}
    handler: static
"#,
        missing = dir.path().join("nope").display(),
        file = file.display(),
    );
    let text = from_str(&src, "s.yaml").unwrap_err().to_string();
    for expected in [
        "routes[0].methods: a static route serves GET and HEAD only",
        "routes[0].path: a static route's path ends with `{*name}`",
        "routes[0].root: cannot use",
        "routes[0].precompressed[0]: `deflate`: precompressed codings are br, zstd, gzip",
        "routes[0].precompressed[2]: `br` is listed twice",
        "routes[0].cache_control: a Cache-Control value is visible ASCII",
        "routes[1].root: ",
        "is not a directory",
        "routes[2].root: `root` is only for `handler: static`",
        "routes[2].cache_control: `cache_control` is only for `handler: static`",
        "routes[3].root: missing required key `root`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn relative_roots_are_relative_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("site")).unwrap();
    let cfg = dir.path().join("portico.yaml");
    std::fs::write(
        &cfg,
        "routes:\n  - {name: s, path: \"/s/{*f}\", handler: static, root: site}\n",
    )
    .unwrap();
    let c = portico_config::load(&cfg).unwrap();
    let Answer::BuiltIn(BuiltIn::Static(s)) = &c.routes[0].answer else {
        panic!()
    };
    assert_eq!(s.root, dir.path().join("site"));
}

#[test]
fn produces_consumes_and_encodings() {
    const ROUTES: &str = r#"
routes:
  - name: a
    path: /a
    methods: [POST]
    handler: echo
    produces: [application/json, "text/csv; charset=utf-8"]
    consumes: [application/json, "image/*"]
  - name: c
    path: /c
    methods: [POST]
    handler: echo
    consumes: [application/json]
    consumes_encodings: [br]
  - name: d
    path: /d
    methods: [POST]
    handler: echo
"#;
    // x-gzip is gzip (RFC 9110 §8.4.1), so it is listed twice.
    let twice = format!(
        "{ROUTES}  - {{name: b, path: /b, methods: [POST], handler: echo, consumes_encodings: [gzip, X-Gzip]}}\n"
    );
    let text = from_str(&twice, "n.yaml").unwrap_err().to_string();
    assert!(
        text.contains("routes[3].consumes_encodings[1]: `X-Gzip` is listed twice"),
        "{text}"
    );
    let c = from_str(ROUTES, "n.yaml").unwrap();
    let a = &c.routes[0];
    assert_eq!(a.produces[1].to_string(), "text/csv; charset=utf-8");
    assert_eq!(a.consumes[1].to_string(), "image/*");
    // Declaring consumes alone takes identity bodies only.
    assert_eq!(a.consumes_encodings, Some(Vec::new()));
    assert_eq!(
        c.routes[1].consumes_encodings.as_ref().unwrap()[0].as_str(),
        "br"
    );
    assert_eq!(c.routes[2].consumes_encodings, None);
    assert!(c.routes[2].produces.is_empty() && c.routes[2].consumes.is_empty());

    let text = from_str(
        r#"
routes:
  - name: a
    path: /a
    methods: [POST]
    handler: echo
    produces: ["application/*", json, application/json, application/json]
    consumes: []
    consumes_encodings: ["a b"]
  - name: b
    path: /b
    methods: [POST]
    handler: echo
    produces: application/json
"#,
        "n.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].produces[0]: `application/*`: a route produces concrete types, not wildcards",
        "routes[0].produces[1]: `json` is not a media type",
        "routes[0].produces[3]: `application/json` is listed twice",
        "routes[0].consumes: list at least one media type, or leave the key out",
        "routes[0].consumes_encodings[0]: `a b` is not a content-coding name",
        "routes[1].produces: expected a list",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(text.matches("expected a list").count(), 1, "{text}");
}

#[test]
fn shipped_examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            portico_config::load(&path).unwrap_or_else(|p| panic!("{p}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn projects_consumers_and_route_access_are_checked() {
    let ok = portico_config::from_str_with_env(
        "projects:\n  - name: demo\n    consumers:\n      - {name: alice, roles: [member], api_keys: [\"${ALICE_KEY}\", literal-key-0123456789]}\n  - {id: 0123456789abcdef0123456789abcdef, name: other, billing_state: suspended}\nroutes:\n  - {name: s, path: \"/v1/{project_id}/s\", methods: [GET], handler: echo, auth: [api_key, none], api_key: {query: key}, allow_cidrs: [10.0.0.0/8, \"::1\"], deny_cidrs: [10.9.0.0/16]}\n  - {name: o, path: /o, methods: [GET], handler: echo, auth: none}\n",
        "a.yaml",
        |name| (name == "ALICE_KEY").then(|| "from-the-environment-0123".to_string()),
    )
    .unwrap();
    let demo = &ok.projects[0];
    // An id derived from the name: the same on every node and after every restart.
    assert_eq!(demo.id, portico_config::project_id_for("demo"));
    assert_eq!(demo.id.len(), 32);
    let keys = &demo.consumers[0].api_keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0].sha256,
        portico_policy::sha256(b"from-the-environment-0123")
    );
    assert_eq!(
        ok.projects[1].billing_state,
        portico_config::BillingState::Suspended
    );
    let access = &ok.routes[0].access;
    assert_eq!(access.schemes, [portico_config::AuthScheme::ApiKey]);
    assert!(access.anonymous);
    assert_eq!(
        access.api_key,
        portico_config::ApiKeyPlace::Query("key".into())
    );
    assert_eq!(access.allow_cidrs.len(), 2);
    assert!(ok.routes[1].access.is_open());
    // The secret itself is in no printout of the configuration.
    assert!(!format!("{ok:?}").contains("from-the-environment"));

    let text = portico_config::from_str_with_env(
        "projects:\n  - {name: a, id: ABC, billing_state: late, consumers: [{name: c, api_keys: [short, \"${MISSING}\"]}]}\n  - {name: b, consumers: [{name: c}, {name: c}]}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo, auth: [api_key, api_key, magic, token], api_key: {header: \"a b\"}, allow_cidrs: [10.0.0.1/8, ten]}\n  - {name: q, path: /q, methods: [GET], handler: echo, api_key: {query: k}}\n",
        "a.yaml",
        |_| None,
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "projects[0].id: a project id is 32 lowercase hexadecimal characters",
        "projects[0].billing_state: `billing_state` is active, suspended or closed",
        "projects[0].consumers[0].api_keys[0]: an API key has at least 16 characters",
        "projects[0].consumers[0].api_keys[1]: the environment variable `MISSING` is not set",
        "projects[1].consumers[1].name: consumer `c` is defined twice",
        "routes[0].auth[1]: `api_key` is listed twice",
        "routes[0].auth[2]: unknown scheme `magic`",
        "routes[0].api_key.header: `a b` is not a field name",
        "routes[0].allow_cidrs[0]: `10.0.0.1/8` has bits set past its /8; the network is 10.0.0.0/8",
        "routes[0].allow_cidrs[1]: `ten` is not an IP address",
        "routes[1].api_key: `api_key` is for routes whose `auth` lists `api_key`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn plans_and_their_quotas_are_checked_and_projects_name_declared_plans() {
    let ok = from_str(
        "plans:\n  - {name: basic, quota: {requests: 100000, period: month}}\n  - {name: open, rate_limits: [{key: consumer, rate: 5/s}]}\nprojects:\n  - {name: a, plan: basic}\n  - {name: b}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap();
    assert_eq!(
        ok.plans[0].quota,
        Some(portico_config::Quota {
            requests: 100_000,
            period: portico_config::QuotaPeriod::Month
        })
    );
    assert_eq!(ok.plans[1].quota, None);
    assert!(ok.plans[0].rate_limits.is_empty());
    assert_eq!(
        ok.plans[1].rate_limits[0].key,
        portico_config::LimitKey::Consumer
    );
    assert_eq!(ok.plans[1].rate_limits[0].burst, 5);
    assert_eq!(ok.projects[1].plan, portico_config::DEFAULT_PLAN);

    let text = from_str(
        "plans:\n  - {name: a, quota: {requests: 0, period: week}}\n  - {name: a, quota: {period: day, burst: 3}}\nprojects:\n  - {name: p, plan: gold}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "plans[0].quota.requests: `requests` is a whole number above 0",
        "plans[0].quota.period: `period` is `day` or `month`",
        "plans[1].quota.requests: missing required key `requests`",
        "plans[1].quota.burst: unknown key `burst`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = from_str(
        "plans:\n  - {name: a}\n  - {name: a}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("plans[1].name: plan `a` is defined twice"),
        "{text}"
    );
    let text = from_str(
        "plans:\n  - {name: a}\nprojects:\n  - {name: p, plan: gold}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("projects[0].plan: plan `gold` is not among `plans`"),
        "{text}"
    );
}

#[test]
fn route_rate_limits_are_checked() {
    let ok = from_str(
        "routes:\n  - {name: a, path: /a, methods: [GET], handler: echo, rate_limit: {key: ip, rate: 10/s}}\n  - {name: b, path: /b, methods: [GET], handler: echo, rate_limit: [{key: project, rate: 100/m, burst: 20}, {key: \"header:X-Tenant\", rate: 5/h, name: tenant}]}\n",
        "a.yaml",
    )
    .unwrap();
    let a = &ok.routes[0].rate_limits;
    assert_eq!((a[0].name.as_str(), a[0].burst), ("ip", 10));
    let b = &ok.routes[1].rate_limits;
    assert_eq!(b[0].key, portico_config::LimitKey::Project);
    assert_eq!(b[0].burst, 20);
    assert_eq!(
        b[1].key,
        portico_config::LimitKey::Header("x-tenant".into())
    );
    assert_eq!(b[1].name, "tenant");
    let text = from_str(
        "routes:\n  - {name: a, path: /a, methods: [GET], handler: echo, rate_limit: [{key: who, rate: 10/w, burst: 0}, {rate: 1/s}, {key: ip, rate: 1/s}, {key: ip, rate: 2/s, extra: 1}]}\n  - {name: b, path: /b, methods: [GET], handler: echo, rate_limit: [{key: ip, rate: 1/s}, {key: ip, rate: 2/s}]}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].rate_limit[0].key: `key` is consumer, project, route, ip or header:NAME",
        "routes[0].rate_limit[0].rate: `rate` is N/s, N/m, N/h or N/d with N above 0",
        "routes[0].rate_limit[0].burst: `burst` is a whole number above 0",
        "routes[0].rate_limit[1].key: missing required key `key`",
        "routes[0].rate_limit[3].extra: unknown key `extra`",
        "routes[1].rate_limit[1]: two limits are named `ip`: give one a `name`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let ok = from_str(
        "cluster: {redis: \"redis://127.0.0.1:6379\"}\nroutes:\n  - {name: a, path: /a, methods: [GET], handler: echo, rate_limit: {key: ip, rate: 1/s, on_store_failure: deny}}\n",
        "a.yaml",
    )
    .unwrap();
    let cluster = ok.cluster.unwrap();
    assert_eq!(cluster.budget, std::time::Duration::from_millis(50));
    assert_eq!(
        ok.routes[0].rate_limits[0].on_store_failure,
        portico_config::OnStoreFailure::Deny
    );
    let text = from_str(
        "cluster: {redis: \"http://x\", budget: 10s}\nroutes:\n  - {name: a, path: /a, methods: [GET], handler: echo, rate_limit: {key: ip, rate: 1/s, on_store_failure: maybe}}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "cluster.redis: `redis` is a redis:// URL",
        "cluster.budget: `budget` is above 0 and at most 5s",
        "routes[0].rate_limit.on_store_failure: `on_store_failure` is allow or deny",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let passive = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"], balance: least_in_flight, passive: {eject: 5s}}\nroutes:\n  - {name: a, path: /a, methods: [GET], upstream: u}\n",
        "a.yaml",
    )
    .unwrap();
    assert!(passive.upstreams[0].least_in_flight);
    assert_eq!(passive.upstreams[0].health, None);
    assert_eq!(
        passive.upstreams[0].passive,
        Some((5, std::time::Duration::from_secs(5)))
    );
    let ok = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"], max_in_flight: 64}\nroutes:\n  - {name: a, path: /a, methods: [GET], upstream: u, max_in_flight: 8}\n",
        "a.yaml",
    )
    .unwrap();
    assert_eq!(ok.upstreams[0].max_in_flight, Some(64));
    assert!(!ok.upstreams[0].least_in_flight);
    assert_eq!(ok.upstreams[0].passive, None);
    assert_eq!(ok.routes[0].max_in_flight, Some(8));
    let text = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"], max_in_flight: 0, balance: random, passive: {failures: 0}, health: {path: healthz, unhealthy: 0}}\nroutes:\n  - {name: a, path: /a, methods: [GET], upstream: u, max_in_flight: -1}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "upstreams[0].max_in_flight: `max_in_flight` is a whole number above 0",
        "upstreams[0].balance: `balance` is round_robin or least_in_flight",
        "upstreams[0].passive.failures: `failures` is 1 to 1000",
        "upstreams[0].health.path: `path` is an absolute path such as /healthz",
        "upstreams[0].health.unhealthy: `unhealthy` is 1 to 100",
        "routes[0].max_in_flight",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_egress_proxy_is_checked() {
    let ok = from_str(
        "egress: {listen: 127.0.0.1:3128, allow_hosts: [api.example.com:443, \"*.example.org\", 10.0.0.0/8, \"[::1]:8080\"], auth: basic}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap();
    let egress = ok.egress.unwrap();
    assert_eq!(egress.auth, portico_config::EgressAuth::Basic);
    assert_eq!(egress.allow_hosts.len(), 4);
    assert_eq!(egress.idle_timeout, std::time::Duration::from_secs(300));
    let text = from_str(
        "egress: {listen: nowhere, allow_hosts: [\"a b\", \"host:0\", 10.0.0.1/8], auth: magic, extra: 1}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "egress.listen: `nowhere` is not an IP address and port",
        "egress.allow_hosts[0]: `a b` is not a host pattern",
        "egress.allow_hosts[1]: `host:0` is not a host pattern",
        "egress.allow_hosts[2]: `10.0.0.1/8` has bits set past its /8",
        "egress.auth: `auth` is `basic` or `token`",
        "egress.extra: unknown key `extra`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = from_str(
        "listen: 127.0.0.1:8080\negress: {listen: 127.0.0.1:8080, allow_hosts: [a.example], auth: token}\nroutes:\n  - {name: r, path: /r, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("egress.listen: 127.0.0.1:8080 is another listener's"),
        "{text}"
    );
}

#[test]
fn signed_bodies_must_fit_the_buffer_budget_and_access_keys_are_unique() {
    let text = from_str(
        "limits: {body_buffer_bytes: 1MiB}\nprojects:\n  - {name: a, consumers: [{name: c, access_keys: [{id: AK1234, secret: secret-key-0123456789}]}]}\n  - {name: b, consumers: [{name: c, access_keys: [{id: AK1234, secret: other-key-0123456789}, {id: \"AK-1\", secret: short}]}]}\nroutes:\n  - {name: r, path: /r, methods: [POST], handler: echo, auth: signature, max_body_bytes: 2MiB}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].auth: a signed body is read whole before it is checked",
        "projects[1].consumers[0].access_keys[1].id: an access key id is 4 to 128 letters and digits",
        "projects[1].consumers[0].access_keys[1].secret: a secret key has at least 16 characters",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = from_str(
        "projects:\n  - {name: a, consumers: [{name: c, access_keys: [{id: AK1234, secret: secret-key-0123456789}]}]}\n  - {name: b, consumers: [{name: c, access_keys: [{id: AK1234, secret: other-key-0123456789}]}]}\nroutes:\n  - {name: r, path: /r, methods: [POST], handler: echo, auth: signature}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("projects[1]: access key id `AK1234` is used twice"),
        "{text}"
    );
    assert!(!text.contains("other-key"), "a secret in a problem: {text}");
}

#[test]
fn route_policies_are_checked() {
    let ok = from_str(
        "routes:\n  - name: r\n    path: /r/{*rest}\n    methods: [GET]\n    handler: echo\n    policy:\n      - deny: {consumers: [mallory]}\n      - allow: {roles: [admin], methods: [GET, DELETE], paths: [\"/r/admin*\"]}\n",
        "a.yaml",
    )
    .unwrap();
    let policy = &ok.routes[0].access.policy;
    assert_eq!(policy.len(), 2);
    assert!(!policy[0].allow && policy[1].allow);
    assert_eq!(policy[1].methods, ["GET", "DELETE"]);
    let text = from_str(
        "routes:\n  - name: r\n    path: /r\n    methods: [GET]\n    handler: echo\n    policy:\n      - allow: {methods: [get], paths: [admin], roles: [\"a b\"]}\n      - {allow: {}, deny: {}}\n      - allow: {colour: [red]}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].policy[0].allow.methods[0]: `get` is not an upper-case method",
        "routes[0].policy[0].allow.paths[0]: `admin` is not a path",
        "routes[0].policy[0].allow.roles[0]: `a b` is not a name",
        "routes[0].policy[1]: a rule is `allow: {…}` or `deny: {…}`",
        "routes[0].policy[2].allow.colour",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_auth_failure_allowance_is_checked() {
    let ok = from_str(
        "limits: {auth_failures: {max: 5, per: 2m}}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap();
    assert_eq!(ok.limits.auth_failures.max, 5);
    assert_eq!(ok.limits.auth_failures.per, Duration::from_secs(120));
    let text = from_str(
        "limits: {auth_failures: {max: 0, per: soon}}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("limits.auth_failures.max: must be from 1 to 1000000"),
        "{text}"
    );
    assert!(text.contains("limits.auth_failures.per:"), "{text}");
}

#[test]
fn the_identity_provider_block_is_checked_with_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"keys": [{"kty": "oct", "kid": "a", "k": "dGhlLWlkZW50aXR5LXByb3ZpZGVycy1oczI1Ni1zZWNyZXQ"}]}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"keys": [{"kty": "OKP"}]}"#).unwrap();
    let route = "routes:\n  - {name: r, path: /r, methods: [GET], handler: echo, auth: jwt}\n";
    let ok = from_str(
        &format!(
            "jwt: {{jwks: {}, issuer: https://idp.example, audience: portico}}\n{route}",
            good.display()
        ),
        "a.yaml",
    )
    .unwrap();
    let jwt = ok.jwt.unwrap();
    assert_eq!(jwt.settings.project_claim, "project_id");
    assert_eq!(jwt.settings.leeway, Duration::from_secs(30));
    for (yaml, expected) in [
        (
            route.to_string(),
            "routes[0].auth: `jwt` needs the top-level `jwt` block",
        ),
        (
            format!(
                "jwt: {{jwks: {}, issuer: i, audience: a}}\n{route}",
                bad.display()
            ),
            "jwt.jwks: key 0: `kty` is RSA, EC or oct",
        ),
        (
            format!(
                "jwt: {{jwks: {}/missing.json, issuer: i, audience: a}}\n{route}",
                dir.path().display()
            ),
            "jwt.jwks: cannot read",
        ),
        (
            format!("jwt: {{jwks: {}}}\n{route}", good.display()),
            "jwt.issuer: missing required key `issuer`",
        ),
    ] {
        let text = from_str(&yaml, "a.yaml").unwrap_err().to_string();
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn cors_policies_are_checked() {
    let ok = from_str(
        "routes:\n  - {name: r, path: /r, methods: [GET, PUT], handler: echo, cors: {origins: [\"https://app.example\"], max_age: 1h}}\n",
        "a.yaml",
    )
    .unwrap();
    let cors = ok.routes[0].access.cors.as_ref().unwrap();
    assert!(cors.methods.contains(&"PUT".to_string()));
    assert_eq!(cors.max_age, Some(3600));
    let text = from_str(
        "routes:\n  - {name: r, path: /r, methods: [GET], handler: echo, cors: {origins: [\"*\"], credentials: true}}\n  - {name: s, path: /s, methods: [GET], handler: echo, cors: {origins: [\"app.example\", \"https://a.example/path\"], headers: [\"a b\"]}}\n  - {name: t, path: /t, methods: [GET], handler: echo, cors: {}}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].cors.credentials: browsers refuse credentials with any origin",
        "routes[1].cors.origins[0]: `app.example` is not valid here",
        "routes[1].cors.origins[1]: `https://a.example/path` is not valid here",
        "routes[1].cors.headers[0]: `a b` is not valid here",
        "routes[2].cors.origins: list at least one origin",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn deadlines_are_read_and_checked() {
    use std::time::Duration;
    let ok = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {name: a, path: /a, methods: [GET], upstream: u, timeout: 10s, max_timeout: 1m, pass_timeout: true}\n  - {name: b, path: /b, methods: [GET], upstream: u}\n",
        "a.yaml",
    )
    .unwrap();
    let a = &ok.routes[0].deadline;
    assert_eq!(a.default, Some(Duration::from_secs(10)));
    assert_eq!(a.max, Some(Duration::from_secs(60)));
    assert!(a.pass);
    assert_eq!(ok.routes[1].deadline, portico_config::Deadline::default());
    let text = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {name: a, path: /a, methods: [GET], upstream: u, timeout: 2m, max_timeout: 1m}\n  - {name: b, path: /b, methods: [GET], handler: echo, timeout: 1s}\n  - {name: c, path: /c, methods: [GET], upstream: u, timeout: 0s, pass_timeout: maybe}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].timeout: `timeout` is longer than `max_timeout`",
        "routes[1].timeout: `timeout` is for routes with an `upstream`",
        "routes[2].timeout: a duration must be greater than zero",
        "routes[2].pass_timeout: expected `true` or `false`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn idempotency_and_async_are_read_and_checked() {
    use std::time::Duration;
    let ok = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {name: a, path: \"/v1/{project_id}/a\", methods: [POST], upstream: u, idempotency: true, async: {sync_wait: 500ms}}\n  - {name: b, path: /b, methods: [POST], upstream: u, idempotency: {ttl: 1h, required: true, max_response_bytes: 2MiB}}\n",
        "a.yaml",
    )
    .unwrap();
    let a = &ok.routes[0];
    assert_eq!(a.idempotency, Some(portico_config::Idempotency::default()));
    let jobs = a.async_jobs.as_ref().unwrap();
    assert_eq!(jobs.sync_wait, Duration::from_millis(500));
    assert_eq!(jobs.retention, Duration::from_secs(86_400));
    assert_eq!(jobs.path, portico_config::DEFAULT_JOBS_PATH);
    let b = ok.routes[1].idempotency.unwrap();
    assert_eq!(
        (b.ttl, b.required, b.max_response_bytes),
        (Duration::from_secs(3600), true, 2 << 20)
    );
    let text = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {name: a, path: /a, methods: [POST], upstream: u, async: {}}\n  - {name: b, path: /b, methods: [POST], handler: echo, idempotency: true}\n  - {name: c, path: \"/v1/{project_id}/c\", methods: [POST], upstream: u, timeout: 1s, async: {}}\n  - {name: d, path: \"/v1/{project_id}/d\", methods: [POST], upstream: u, async: {path: \"/jobs\", lease: 10ms}}\n  - {name: e, path: \"/v1/{project_id}/e\", methods: [POST], upstream: u, idempotency: {ttl: soon, max_response_bytes: 1GiB}}\n  - {name: f, path: \"/v1/{project_id}/f\", methods: [POST], upstream: u, async: {}, auth: api_key}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "routes[0].async: a job belongs to a project",
        "routes[1].idempotency: `idempotency` is for routes with an `upstream`",
        "routes[2].timeout: an `async` route has no default deadline",
        "routes[3].async.path: a jobs path is a route path whose one parameter is `{project_id}`",
        "routes[4].idempotency.ttl",
        "routes[4].idempotency.max_response_bytes: at most 64MiB",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = from_str(
        "upstreams:\n  - {name: u, targets: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {name: e, path: \"/v1/{project_id}/e\", methods: [POST], upstream: u, async: {}}\n  - {name: f, path: \"/v1/{project_id}/f\", methods: [POST], upstream: u, async: {}, auth: api_key}\n",
        "a.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains(
            "routes[1].async.path: jobs at `/v1/{project_id}/jobs` are read with the access rules"
        ),
        "{text}"
    );
}

#[test]
fn an_apis_cache_applies_to_its_proxied_routes_that_say_nothing_of_their_own() {
    let c = portico_config::from_str(
        r#"
cache: {memory: 8MiB}
upstreams: [{name: u, targets: ["http://127.0.0.1:9"]}]
apis:
  - name: shop
    base_path: /shop
    cache: {heuristic: true}
    versions: [{id: v1, status: published}]
routes:
  - {name: items, path: "/shop/v1/items", methods: [GET], upstream: u}
  - {name: fresh, path: "/shop/v1/fresh", methods: [GET], upstream: u, cache: false}
  - {name: own, path: "/shop/v1/own", methods: [GET], upstream: u, cache: {max_entry_bytes: 1KiB}}
  - {name: echo, path: "/shop/v1/echo", methods: [GET], handler: echo}
  - {name: other, path: "/elsewhere", methods: [GET], upstream: u}
"#,
        "t.yaml",
    )
    .unwrap_or_else(|p| panic!("{p}"));
    let cache = |name: &str| c.routes.iter().find(|r| r.name == name).unwrap().cache;
    assert_eq!(c.cache.memory, 8 << 20);
    assert!(cache("items").is_some_and(|k| k.enabled && k.heuristic));
    assert!(cache("fresh").is_some_and(|k| !k.enabled));
    assert!(cache("own").is_some_and(|k| k.max_entry_bytes == 1024 && !k.heuristic));
    assert_eq!(cache("echo"), None);
    assert_eq!(cache("other"), None);
}

#[test]
fn cache_settings_that_cannot_work_are_refused_with_their_place() {
    for (yaml, place) in [
        ("cache: {memory: 1KiB}\n", "cache.memory"),
        ("cache: {disk: {path: d}}\n", "cache.disk.size"),
        ("cache: {disk: {path: d, size: 10}}\n", "cache.disk.size"),
        ("cache: {bogus: 1}\n", "cache.bogus"),
    ] {
        let text =
            format!("{yaml}routes: [{{name: e, path: /e, methods: [GET], handler: echo}}]\n");
        let problems = portico_config::from_str(&text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(problems.contains(place), "{yaml}: {problems}");
    }
    let text = "routes: [{name: e, path: /e, methods: [GET], handler: echo, cache: true}]\n";
    let problems = portico_config::from_str(text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("`cache` is for routes with an `upstream`"),
        "{problems}"
    );
}

#[test]
fn metrics_and_tracing_are_read_with_their_defaults() {
    let echo = "routes: [{name: e, path: /e, methods: [GET], handler: echo}]\n";
    let c = from_str(echo, "t.yaml").unwrap();
    assert!(c.metrics.enabled && c.metrics.listen.is_none());
    assert_eq!(c.metrics.buckets, portico_config::Metrics::DEFAULT_BUCKETS);
    assert_eq!(c.tracing, None);
    let text = format!(
        "metrics: {{enabled: false, listen: 127.0.0.1:9464, buckets: [0.01, 1]}}\ntracing: {{otlp_endpoint: 'http://127.0.0.1:4318', sample_ratio: 0.01}}\n{echo}"
    );
    let c = from_str(&text, "t.yaml").unwrap_or_else(|p| panic!("{p}"));
    assert!(!c.metrics.enabled);
    assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9464));
    assert_eq!(c.metrics.buckets, [0.01, 1.0]);
    let t = c.tracing.unwrap();
    assert_eq!(
        (
            t.otlp_endpoint.as_str(),
            t.sample_ratio,
            t.service_name.as_str()
        ),
        ("http://127.0.0.1:4318", 0.01, "portico")
    );
}

#[test]
fn metrics_and_tracing_settings_that_cannot_work_are_refused_with_their_place() {
    for (yaml, place) in [
        ("metrics: {buckets: []}\n", "metrics.buckets"),
        ("metrics: {buckets: [1, 0.5]}\n", "metrics.buckets"),
        ("metrics: {buckets: [0]}\n", "metrics.buckets"),
        ("metrics: {buckets: [fast]}\n", "metrics.buckets"),
        ("metrics: {listen: nowhere}\n", "metrics.listen"),
        ("metrics: {listen: '127.0.0.1:8080'}\n", "metrics.listen"),
        ("metrics: {bogus: 1}\n", "metrics.bogus"),
        ("tracing: {sample_ratio: 0.5}\n", "tracing.otlp_endpoint"),
        (
            "tracing: {otlp_endpoint: collector:4318}\n",
            "tracing.otlp_endpoint",
        ),
        (
            "tracing: {otlp_endpoint: 'http://c:4318', sample_ratio: 2}\n",
            "tracing.sample_ratio",
        ),
    ] {
        let text =
            format!("{yaml}routes: [{{name: e, path: /e, methods: [GET], handler: echo}}]\n");
        let problems = from_str(&text, "t.yaml").unwrap_err().to_string();
        assert!(problems.contains(place), "{yaml}: {problems}");
    }
}
