//! Configuration reading as `check-config` sees it: whole files in, every problem out.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use portico_config::{AccessLog, Action, Handler, from_str};
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
    assert_eq!(r.action, Action::Upstream(0));
    assert_eq!(r.max_body_bytes, Some(1 << 20));
    assert!(r.methods.allows(Method::Delete) && !r.methods.allows(Method::Patch));
    assert!(!r.require_content_length);
    assert_eq!(c.access_log, AccessLog::Stdout);
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
    targets: ["https://127.0.0.1:9000"]
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
        "bad.yaml:8:15: upstreams[0].targets[0]: `https://127.0.0.1:9000`",
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
        text.contains("routes[0]: a route needs `upstream` or `handler`"),
        "{text}"
    );
    assert!(
        text.contains("routes[1].handler: a route has either `upstream` or `handler`, not both"),
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
fn handler_and_defaults() {
    let c = from_str(
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
        "h.yaml",
    )
    .unwrap();
    assert_eq!(c.routes[0].action, Action::Handler(Handler::Echo));
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits, portico_config::Limits::default());
    let e = from_str(
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: static}\n",
        "h.yaml",
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("unknown handler `static`")
    );
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
