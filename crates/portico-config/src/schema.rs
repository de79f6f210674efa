//! JSON Schemas (draft 2020-12) of the model's documents as the admin API takes them:
//! upstreams, routes and APIs. The admin API validates each document against these before
//! anything else, and publishes them in its OpenAPI document, so what it publishes is what
//! it enforces.
//!
//! Each schema says what the file's reader says of one document, as far as a schema can:
//! keys, types, the forms of durations, sizes, names, paths, targets and media types, which
//! keys go together (`websocket` needs an `upstream`, a static route's path ends with
//! `{*name}`). Where it is stricter than the file (a duration has at most six digits and no
//! leading zero, a path parameter is a whole segment), it says so in its words. What a
//! schema cannot say (a redirect's parameters are the path's, `timeout` is at most
//! `max_timeout`, two rate limits have different names, a file named exists, a name is not
//! taken) is checked after it by the reader, and answered 409: the document is well formed,
//! but the model cannot take it.
//!
//! Patterns are written for both engines that read them: the `regex` crate (validation) and
//! Python's `re` (the property-based tester that generates documents from them): no
//! look-around, no back-references.

use serde_json::{Value, json};

/// A regular expression for the whole numbers from `lo` to `hi` (no leading zeros).
pub fn range(lo: u64, hi: u64) -> String {
    let mut parts = Vec::new();
    for (a, b) in split_range(lo, hi) {
        parts.push(digits_pattern(a, b));
    }
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        format!("(?:{})", parts.join("|"))
    }
}

/// Splits `lo..=hi` into ranges whose bounds have the same number of digits and differ
/// digit by digit in a way one pattern can say (`120-129`, `130-199`, `200-999`).
fn split_range(lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut stops = vec![hi];
    let fill_nines = |n: u64, count: u32| {
        let p = 10u64.pow(count);
        n - n % p + (p - 1)
    };
    let mut count = 1;
    let mut stop = fill_nines(lo, count);
    while lo <= stop && stop < hi {
        stops.push(stop);
        count += 1;
        if count > 19 {
            break;
        }
        stop = fill_nines(lo, count);
    }
    let mut count = 1;
    let fill_zeros = |n: u64, count: u32| n - n % 10u64.pow(count);
    let mut stop = fill_zeros(hi + 1, count).wrapping_sub(1);
    while lo < stop && stop <= hi {
        stops.push(stop);
        count += 1;
        if count > 19 {
            break;
        }
        stop = fill_zeros(hi + 1, count).wrapping_sub(1);
    }
    stops.sort_unstable();
    stops.dedup();
    let mut out = Vec::new();
    let mut start = lo;
    for s in stops {
        if s >= start {
            out.push((start, s));
            start = s + 1;
        }
    }
    out
}

/// `a..=b` (same number of digits) as digit classes.
fn digits_pattern(a: u64, b: u64) -> String {
    let (a, b) = (a.to_string(), b.to_string());
    let mut out = String::new();
    let mut any = 0;
    for (x, y) in a.chars().zip(b.chars()) {
        if x == y {
            out.push(x);
        } else if x == '0' && y == '9' {
            any += 1;
        } else {
            out.push_str(&format!("[{x}-{y}]"));
        }
    }
    match any {
        0 => {}
        1 => out.push_str("[0-9]"),
        n => out.push_str(&format!("[0-9]{{{n}}}")),
    }
    out
}

/// A name: letters, digits, `-`, `_` and `.` (what the file's names are), at most 128.
pub const NAME: &str = "^[A-Za-z0-9._-]{1,128}$";

/// A duration: a whole number (no leading zero, at most six digits) and a unit.
pub const DURATION: &str = "^[1-9][0-9]{0,5}(ms|s|m|h|d)$";

/// A duration from `min_ms` to `max_ms` milliseconds, in any unit that says it exactly.
pub fn duration_between(min_ms: u64, max_ms: u64) -> String {
    let units = [
        ("ms", 1u64),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    let mut alts = Vec::new();
    for (unit, ms) in units {
        let lo = min_ms.div_ceil(ms).max(1);
        let hi = (max_ms / ms).min(999_999);
        if lo <= hi {
            alts.push(format!("{}{unit}", range(lo, hi)));
        }
    }
    format!("^(?:{})$", alts.join("|"))
}

/// A size: a number of bytes, or of KiB, MiB, GiB (small enough not to overflow).
pub const SIZE: &str = "^(?:(?:0|[1-9][0-9]{0,14})B?|(?:0|[1-9][0-9]{0,11})KiB|(?:0|[1-9][0-9]{0,8})MiB|(?:0|[1-9][0-9]{0,5})GiB)$";

/// A size of at most `max` bytes.
pub fn size_upto(max: u64) -> String {
    let units = [
        ("", 1u64),
        ("B", 1),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    let alts: Vec<String> = units
        .iter()
        .map(|(unit, n)| format!("{}{unit}", range(0, max / n)))
        .collect();
    format!("^(?:{})$", alts.join("|"))
}

/// An RFC 3339 time as the file reads it (1971 to 9999; February 29th of leap years from 2000).
pub fn timestamp() -> String {
    let year = range(1971, 9999);
    let date = format!(
        "(?:{year}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))|(?:[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)-02-29)"
    );
    format!(
        "^{date}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
    )
}

const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

fn ipv4() -> String {
    format!("{OCTET}(?:\\.{OCTET}){{3}}")
}

/// An IPv6 address in its common forms (full, and with `::`).
fn ipv6() -> String {
    let h = "[0-9A-Fa-f]{1,4}";
    format!(
        "(?:(?:{h}:){{7}}{h}|(?:{h}:){{1,7}}:|(?:{h}:){{1,6}}:{h}|(?:{h}:){{1,5}}(?::{h}){{1,2}}|(?:{h}:){{1,4}}(?::{h}){{1,3}}|(?:{h}:){{1,3}}(?::{h}){{1,4}}|(?:{h}:){{1,2}}(?::{h}){{1,5}}|{h}:(?::{h}){{1,6}}|:(?::{h}){{1,7}}|::)"
    )
}

/// A host name (labels of letters, digits and `-`).
const HOSTNAME: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*";

fn host() -> String {
    format!("(?:{HOSTNAME}|\\[{}\\])", ipv6())
}

fn port() -> String {
    range(1, 65535)
}

/// An upstream target: `http://`, `h2c://` or `https://` and `host[:port]`.
pub fn target() -> String {
    format!("^(?:http|h2c|https)://{}(?::{})?/?$", host(), port())
}

/// A network: an IPv4 or IPv6 address, with a prefix length or without.
pub fn cidr() -> String {
    format!(
        "^(?:{}(?:/(?:3[0-2]|[12]?[0-9]))?|{}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$",
        ipv4(),
        ipv6()
    )
}

/// A token (RFC 9110 §5.6.2), as header and coding names are.
pub const TOKEN: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$";

const MT: &str = "[a-z0-9][a-z0-9!#$&^_.+-]{0,63}";

/// A media type without wildcards (`produces`).
pub fn media_type() -> String {
    format!("^{MT}/{MT}$")
}

/// A media type or range (`consumes`): `*/*`, `type/*`, `type/*+suffix`.
pub fn media_range() -> String {
    format!("^(?:\\*/\\*|{MT}/(?:\\*|\\*\\+{MT}|{MT}))$")
}

/// A literal piece of a path segment: path characters, dots only between others.
const SEGMENT_TEXT: &str = "(?:[A-Za-z0-9_~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+(?:\\.(?:[A-Za-z0-9_~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+)*";
const PARAM: &str = "[A-Za-z_][A-Za-z0-9_]{0,31}";

/// A route path template: segments of text or a whole-segment `{name}`, and at the end
/// perhaps `{*name}`.
pub fn path_template() -> String {
    let seg = format!("(?:{SEGMENT_TEXT}|\\{{{PARAM}\\}})?");
    format!("^/(?:{seg}(?:/{seg})*(?:/\\{{\\*{PARAM}\\}})?|\\{{\\*{PARAM}\\}})$")
}

/// A template that ends with `{*name}` (a static route's).
fn catch_all_path() -> String {
    let seg = format!("(?:{SEGMENT_TEXT}|\\{{{PARAM}\\}})?");
    format!("^/(?:{seg}/)*\\{{\\*{PARAM}\\}}$")
}

/// A template with `{project_id}` (an async route's: jobs belong to a project).
fn project_path() -> String {
    let seg = format!("(?:{SEGMENT_TEXT}|\\{{{PARAM}\\}})?");
    format!("^/(?:{seg}/)*\\{{project_id\\}}(?:/{seg})*(?:/\\{{\\*{PARAM}\\}})?$")
}

/// A redirect's target: an absolute path (`/…`, not `//…`) or an http(s) URL whose host is
/// fixed; `{name}` and `{*name}` stand for the route's path parameters in the rest.
fn redirect_target() -> String {
    let text = "[A-Za-z0-9._~!$&'()*+,;=:@%/?#\\[\\]-]";
    let piece = format!("(?:{text}|\\{{\\*?{PARAM}\\}})");
    format!(
        "^(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@%?#\\[\\]-]|\\{{\\*?{PARAM}\\}}){piece}*|/|https?://(?:{HOSTNAME}|\\[{}\\])(?::{})?(?:[/?#]{piece}*)?)$",
        ipv6(),
        port()
    )
}

/// A size: written with its unit, or a whole number of bytes (as YAML gives a plain number).
fn size(pattern: &str, max: u64) -> Value {
    json!({"anyOf": [string(pattern), {"type": "integer", "minimum": 0, "maximum": max}]})
}

fn string(pattern: &str) -> Value {
    json!({"type": "string", "pattern": pattern})
}

fn list_of(item: Value) -> Value {
    json!({"type": "array", "items": item, "minItems": 1, "maxItems": 64, "uniqueItems": true})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn whole(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// What keys need another key to be present (`if KEY then required THEN`).
fn requires(key: &str, needs: &str) -> Value {
    json!({"if": {"required": [key]}, "then": {"required": [needs]}})
}

/// An upstream document.
pub fn upstream() -> Value {
    json!({
        "type": "object",
        "description": "An upstream service, as in the configuration file's `upstreams`.",
        "required": ["name", "targets"],
        "additionalProperties": false,
        "properties": {
            "name": string(NAME),
            "targets": list_of(string(&target())),
            "connect_timeout": string(DURATION),
            "max_idle_per_target": whole(0, 1_000_000),
            "max_in_flight": whole(1, 1_000_000_000),
            "balance": {"enum": ["round_robin", "least_in_flight"]},
            "passive": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"failures": whole(1, 1000), "eject": string(DURATION)}
            },
            "health": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "path": string("^/[!-~]{0,1023}$"),
                    "interval": string(DURATION),
                    "timeout": string(DURATION),
                    "healthy": whole(1, 100),
                    "unhealthy": whole(1, 100)
                }
            },
            "idle_timeout": string(DURATION),
            "tls": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "ca": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "A PEM file on the gateway's machine: it must exist (409 otherwise)."},
                    "server_name": string(&format!("^{HOSTNAME}$"))
                }
            }
        },
        "allOf": [{
            "if": {"required": ["tls"]},
            "then": {"properties": {"targets": {"contains": string("^https://")}}}
        }]
    })
}

/// A rate limit (`rate_limit` items).
fn rate_limit() -> Value {
    json!({
        "type": "object",
        "required": ["key", "rate"],
        "additionalProperties": false,
        "properties": {
            "key": string("^(?:consumer|project|route|ip|header:[A-Za-z0-9-]{1,64})$"),
            "rate": string("^[1-9][0-9]{0,8}/[smhd]$"),
            "burst": whole(1, 1_000_000_000),
            "name": string(NAME),
            "on_store_failure": {"enum": ["allow", "deny"]}
        }
    })
}

/// The conditions of a policy rule.
fn condition() -> Value {
    let methods =
        json!({"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "consumers": {"type": "array", "maxItems": 64, "items": string(NAME)},
            "roles": {"type": "array", "maxItems": 64, "items": string(NAME)},
            "methods": {"type": "array", "maxItems": 8, "items": methods},
            "paths": {"type": "array", "maxItems": 64, "items": string("^/[!-~]{0,1023}$")}
        }
    })
}

/// A route document.
pub fn route() -> Value {
    let methods =
        json!({"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]});
    let scheme = json!({"enum": ["token", "jwt", "signature", "api_key", "none"]});
    let upstream_only = [
        "buffer_body",
        "websocket",
        "grpc",
        "timeout",
        "max_timeout",
        "idempotency",
        "async",
        "transform",
        "cache",
    ];
    let mut all_of: Vec<Value> = upstream_only
        .iter()
        .map(|k| requires(k, "upstream"))
        .collect();
    all_of.extend([
        // Exactly one of `upstream`, `handler`, `redirect` and `use_proxy` answers.
        json!({"oneOf": [
            {"required": ["upstream"]},
            {"required": ["handler"]},
            {"required": ["redirect"]},
            {"required": ["use_proxy"]}
        ]}),
        // `methods` may be left out of a static route only (it serves GET).
        json!({
            "if": {"required": ["handler"], "properties": {"handler": {"const": "static"}}},
            "then": {
                "required": ["root"],
                "properties": {
                    "path": string(&catch_all_path()),
                    "methods": {"items": {"enum": ["GET", "HEAD", "OPTIONS"]}}
                }
            },
            "else": {
                "required": ["methods"],
                "properties": {"root": false, "cache_control": false, "precompressed": false}
            }
        }),
        json!({
            "if": {"required": ["handler"], "properties": {"handler": {"const": "tokens"}}},
            "then": {"properties": {"methods": {"const": ["POST"]}}},
            "else": {"properties": {"token_ttl": false}}
        }),
        json!({
            "if": {"required": ["websocket"], "properties": {"websocket": {"const": true}}},
            "then": {"properties": {"methods": {"contains": {"const": "GET"}}}},
            "else": {"properties": {"websocket_idle_timeout": false}}
        }),
        json!({
            "if": {"required": ["api_key"]},
            "then": {
                "required": ["auth"],
                "properties": {"auth": {"anyOf": [
                    {"const": "api_key"},
                    {"type": "array", "contains": {"const": "api_key"}}
                ]}}
            }
        }),
        json!({
            "if": {"required": ["async"]},
            "then": {"properties": {"path": string(&project_path()), "timeout": false}}
        }),
    ]);
    json!({
        "type": "object",
        "description": "A route, as in the configuration file's `routes` (its file-only keys `openapi`, `operations` and `validate_responses` aside). Checked after this schema, and answered 409 `PTC.MODEL_CONFLICT` when broken: the upstream it names exists; it overlaps no route; a redirect's parameters are its path's; its path parameters have different names; `timeout` is at most `max_timeout`; its rate limits have different names; a static root is a directory on the gateway's machine; `jwt` needs the file's `jwt` block.",
        "additionalProperties": false,
        "required": ["name", "path"],
        "properties": {
            "name": string(NAME),
            "path": string(&path_template()),
            "methods": list_of(methods.clone()),
            "upstream": string(NAME),
            "handler": {"enum": ["echo", "static", "tokens"]},
            "redirect": {
                "type": "object",
                "required": ["to"],
                "additionalProperties": false,
                "properties": {
                    "to": {"type": "string", "maxLength": 2048, "pattern": redirect_target()},
                    "status": {"enum": [301, 302, 303, 307, 308]}
                }
            },
            "use_proxy": string(&format!("^https?://(?:{HOSTNAME}|\\[{}\\])(?::{})?/?$", ipv6(), port())),
            "token_ttl": string(&duration_between(1, 7 * 86_400_000)),
            "max_body_bytes": size(SIZE, 1 << 50),
            "require_content_length": boolean(),
            "buffer_body": boolean(),
            "websocket": boolean(),
            "websocket_idle_timeout": string(DURATION),
            "grpc": boolean(),
            "produces": list_of(string(&media_type())),
            "consumes": list_of(string(&media_range())),
            "consumes_encodings": {"type": "array", "maxItems": 16, "uniqueItems": true, "items": string("^(?:gzip|deflate|br|zstd|compress)$")},
            "root": {"type": "string", "minLength": 1, "maxLength": 4096},
            "cache_control": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[ -~]+$"},
            "precompressed": {"type": "array", "maxItems": 3, "uniqueItems": true, "items": {"enum": ["br", "zstd", "gzip"]}},
            "auth": {"anyOf": [scheme.clone(), list_of(scheme)]},
            "api_key": {
                "type": "object",
                "additionalProperties": false,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "header": string(TOKEN),
                    "query": string("^[^&=#]{1,64}$")
                }
            },
            "allow_cidrs": {"type": "array", "maxItems": 256, "items": string(&cidr())},
            "deny_cidrs": {"type": "array", "maxItems": 256, "items": string(&cidr())},
            "policy": {
                "type": "array",
                "maxItems": 64,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "maxProperties": 1,
                    "properties": {"allow": condition(), "deny": condition()}
                }
            },
            "cors": {
                "type": "object",
                "required": ["origins"],
                "additionalProperties": false,
                "properties": {
                    "origins": list_of(string(&format!("^(?:\\*|https?://(?:{HOSTNAME}|\\[{}\\])(?::{})?/?)$", ipv6(), port()))),
                    "methods": {"type": "array", "maxItems": 8, "items": methods},
                    "headers": {"type": "array", "maxItems": 64, "items": string(TOKEN)},
                    "credentials": boolean(),
                    "max_age": string(DURATION),
                    "expose_headers": {"type": "array", "maxItems": 64, "items": string(TOKEN)}
                },
                "if": {"required": ["credentials"], "properties": {"credentials": {"const": true}}},
                "then": {"properties": {"origins": {"items": {"not": {"const": "*"}}}}}
            },
            "rate_limit": {"anyOf": [rate_limit(), {"type": "array", "minItems": 1, "maxItems": 16, "items": rate_limit()}]},
            "max_in_flight": whole(1, 1_000_000_000),
            "timeout": string(DURATION),
            "max_timeout": string(DURATION),
            "pass_timeout": boolean(),
            "idempotency": {"anyOf": [
                boolean(),
                {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "ttl": string(DURATION),
                        "lease": string(DURATION),
                        "required": boolean(),
                        "max_response_bytes": size(&size_upto(64 << 20), 64 << 20)
                    }
                }
            ]},
            "async": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "sync_wait": string(DURATION),
                    "retention": string(DURATION),
                    "path": string(&format!("^(?:/{SEGMENT_TEXT})*/\\{{project_id\\}}(?:/{SEGMENT_TEXT})*$")),
                    "lease": string(&duration_between(1000, 999_999 * 86_400_000)),
                    "max_result_bytes": size(&size_upto(64 << 20), 64 << 20)
                }
            },
            "transform": {
                "type": "object",
                "additionalProperties": false,
                "minProperties": 1,
                "properties": {
                    "keep": {"type": "array", "maxItems": 64, "items": string("^(?:/(?:[^/~]|~[01])*)+$")},
                    "remove": {"type": "array", "maxItems": 64, "items": string("^(?:/(?:[^/~]|~[01])*)+$")},
                    "rename": {"type": "object", "maxProperties": 64, "propertyNames": {"pattern": "^(?:/(?:[^/~]|~[01])*)*/(?:[^/~*]|~[01])(?:[^/~]|~[01])*$"}, "additionalProperties": {"type": "string", "minLength": 1}},
                    "add": {"type": "object", "maxProperties": 64, "propertyNames": {"pattern": "^(?:/(?:[^/~]|~[01])*)*/(?:[^/~*]|~[01])(?:[^/~]|~[01])*$"}},
                    "max_bytes": size(SIZE, 1 << 50)
                },
                "anyOf": [{"required": ["keep"]}, {"required": ["remove"]}, {"required": ["rename"]}, {"required": ["add"]}]
            },
            "cache": cache()
        },
        "allOf": all_of
    })
}

/// An API document.
pub fn api() -> Value {
    let window = json!({
        "type": "object",
        "required": ["start", "end"],
        "additionalProperties": false,
        "properties": {"start": string(&timestamp()), "end": string(&timestamp())}
    });
    json!({
        "type": "object",
        "description": "An API and the lifecycle of its versions, as in the configuration file's `apis` (`openapi` on a version is the file's only). Checked after this schema, and answered 409 `PTC.MODEL_CONFLICT` when broken: its name and base path are not taken; its version ids differ; a maintenance window starts before it ends; a version is deprecated before its sunset.",
        "required": ["name", "base_path", "versions"],
        "additionalProperties": false,
        "properties": {
            "name": string(NAME),
            "base_path": string(&format!("^/(?:{SEGMENT_TEXT}(?:/{SEGMENT_TEXT})*)?$")),
            "versions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {
                    "type": "object",
                    "required": ["id", "status"],
                    "additionalProperties": false,
                    "properties": {
                        "id": string("^[A-Za-z0-9._-]{1,64}$"),
                        "status": {"enum": ["published", "deprecated", "retired", "disabled"]},
                        "deprecated_at": string(&timestamp()),
                        "sunset": string(&timestamp()),
                        "maintenance": window
                    },
                    "if": {"properties": {"status": {"const": "deprecated"}}},
                    "then": {"required": ["deprecated_at", "sunset"]},
                    "else": {"properties": {"deprecated_at": false, "sunset": false}}
                }
            },
            "cache": cache()
        }
    })
}

/// `cache` on a route or an API: on or off, or its settings.
fn cache() -> Value {
    json!({"oneOf": [
        boolean(),
        {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "max_entry_bytes": size(SIZE, 1 << 50),
                "heuristic": boolean(),
                "share_cookies": boolean(),
                "key": boolean(),
                "wait": string(DURATION)
            }
        }
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern)
            .map(|r| r.is_match(s))
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    #[test]
    fn ranges_match_exactly_their_numbers() {
        for (lo, hi) in [
            (0, 9),
            (1, 65535),
            (1971, 9999),
            (7, 120),
            (0, 67_108_864),
            (1, 1),
        ] {
            let p = format!("^{}$", range(lo, hi));
            for n in [
                lo,
                hi,
                lo + (hi - lo) / 2,
                lo.saturating_sub(1),
                hi + 1,
                hi * 10,
            ] {
                let inside = (lo..=hi).contains(&n);
                assert_eq!(matches(&p, &n.to_string()), inside, "{p} on {n}");
            }
            assert!(!matches(&p, &format!("0{hi}")), "{p}: leading zero");
        }
    }

    #[test]
    fn bounded_durations_and_sizes() {
        let ttl = duration_between(1, 7 * 86_400_000);
        for ok in ["1ms", "7d", "168h", "604800s", "10080m"] {
            assert!(matches(&ttl, ok), "{ok}");
        }
        for bad in ["8d", "169h", "0s", "604801s", "07d"] {
            assert!(!matches(&ttl, bad), "{bad}");
        }
        let max = size_upto(64 << 20);
        for ok in ["64MiB", "65536KiB", "67108864", "0", "1B"] {
            assert!(matches(&max, ok), "{ok}");
        }
        for bad in ["65MiB", "1GiB", "67108865"] {
            assert!(!matches(&max, bad), "{bad}");
        }
    }

    /// The proxy URLs the schema allows are the ones the reader takes: a URL any client reads.
    #[test]
    fn proxy_urls_agree_with_the_reader() {
        let pattern = super::route()["properties"]["use_proxy"]["pattern"]
            .as_str()
            .unwrap()
            .to_string();
        for ok in [
            "http://proxy.example:3128",
            "https://[::1]:8443/",
            "http://10.0.0.1",
            "http://p",
        ] {
            assert!(matches(&pattern, ok), "{ok}");
            assert!(crate::routes::valid_proxy_url(ok), "{ok}");
        }
        for bad in [
            "http://[",
            "http://[::1",
            "http://]",
            "http://a:0",
            "http://a:99999",
            "http://[zz]:1",
            "http://a/b",
            "ftp://a",
        ] {
            assert!(!matches(&pattern, bad), "{bad}");
            assert!(!crate::routes::valid_proxy_url(bad), "{bad}");
        }
    }

    #[test]
    fn templates_targets_and_times() {
        for ok in [
            "/",
            "/v1/{project_id}/items",
            "/files/{*rest}",
            "/{*all}",
            "/a.json",
            "/a//b/",
        ] {
            assert!(matches(&path_template(), ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/{*r}/b",
            "/a/../b",
            "/a b",
            "/x{y}",
            "/.",
            "/{1x}",
        ] {
            assert!(!matches(&path_template(), bad), "{bad}");
        }
        for ok in [
            "http://127.0.0.1:9000",
            "h2c://a.example",
            "https://[::1]:443/",
        ] {
            assert!(matches(&target(), ok), "{ok}");
        }
        for bad in [
            "ftp://a",
            "http://a:0",
            "http://a:65536",
            "http://a/x",
            "http://u@a",
        ] {
            assert!(!matches(&target(), bad), "{bad}");
        }
        let t = timestamp();
        for ok in [
            "2027-01-01T00:00:00Z",
            "2024-02-29T12:00:00+02:00",
            "2000-02-29t00:00:00z",
        ] {
            assert!(matches(&t, ok), "{ok}");
            assert!(crate::parse_timestamp(ok).is_some(), "{ok}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "1969-01-01T00:00:00Z",
        ] {
            assert!(!matches(&t, bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod keys {
    use serde_json::Value;

    fn properties(schema: &Value) -> Vec<String> {
        let mut keys: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str], without: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = keys
            .iter()
            .filter(|k| !without.contains(k))
            .map(|k| k.to_string())
            .collect();
        out.sort();
        out
    }

    /// The schemas name every key the reader takes (less the file's own): a key added to one
    /// and not the other fails here.
    #[test]
    fn the_schemas_have_the_readers_keys() {
        assert_eq!(
            properties(&super::route()),
            sorted(
                crate::routes::ROUTE_KEYS,
                &["openapi", "operations", "validate_responses"]
            )
        );
        assert_eq!(
            properties(&super::upstream()),
            sorted(crate::upstreams::UPSTREAM_KEYS, &[])
        );
        assert_eq!(
            properties(&super::api()),
            sorted(crate::apis::API_KEYS, &[])
        );
        let version = &super::api()["properties"]["versions"]["items"];
        assert_eq!(
            properties(version),
            sorted(crate::apis::VERSION_KEYS, &["openapi"])
        );
    }
}
