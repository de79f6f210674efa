//! `apis`: the APIs behind Portico, their versions, and each version's lifecycle, which the
//! data plane enforces before routing: version discovery (300) on an API's base path,
//! `Deprecation` and `Sunset` on deprecated versions, 410 for retired ones, 503 for disabled
//! ones and, with `Retry-After`, inside a maintenance window.
//!
//! ```yaml
//! apis:
//!   - name: compute
//!     base_path: /compute
//!     versions:                       # newest first: the first published one is current
//!       - {id: v2, status: published}
//!       - {id: v1, status: deprecated, deprecated_at: 2026-01-01T00:00:00Z, sunset: 2027-01-01T00:00:00Z}
//!       - {id: v0, status: retired}
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::read::{Reader, join};
use crate::yaml::Node;

/// An API: a base path and its versions, each under `{base_path}/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// Unique name.
    pub name: String,
    /// Where its versions live (`/compute`; `/` for an API at the root).
    pub base_path: String,
    /// Its versions, newest first.
    pub versions: Vec<ApiVersion>,
    /// The response cache of every proxied route under its base path that does not say
    /// otherwise (`cache`).
    pub cache: Option<crate::cache::RouteCache>,
}

/// One version of an API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersion {
    /// The path segment after the base path (`v2`).
    pub id: String,
    /// Where it is in its life.
    pub state: VersionState,
    /// A window during which it answers 503 with `Retry-After`.
    pub maintenance: Option<Window>,
}

/// Where a version is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionState {
    /// Served.
    Published,
    /// Served, with `Deprecation` and `Sunset` on its responses.
    Deprecated {
        /// When it was deprecated (`Deprecation: @<seconds>`, RFC 9745).
        since: SystemTime,
        /// When it is expected to go (`Sunset`, RFC 8594).
        sunset: SystemTime,
    },
    /// Gone for good: 410.
    Retired,
    /// Switched off: 503 without `Retry-After` (do not retry before something changes).
    Disabled,
}

/// A time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its start.
    pub start: SystemTime,
    /// Its end (after the start).
    pub end: SystemTime,
}

pub(crate) const API_KEYS: &[&str] = &["name", "base_path", "versions", "cache"];
/// `openapi` is read with the routes (see `openapi.rs`): it stands for the version's routes.
pub(crate) const VERSION_KEYS: &[&str] = &[
    "id",
    "status",
    "deprecated_at",
    "sunset",
    "maintenance",
    "openapi",
];
const WINDOW_KEYS: &[&str] = &["start", "end"];

/// Reads `apis`.
pub(crate) fn read_apis(r: &mut Reader, node: &Node) -> Option<Vec<Api>> {
    let items = r.seq(node, "apis")?;
    let mut apis: Vec<Api> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("apis[{i}]");
        match read_api(r, item, &path) {
            Some(api) => {
                if apis.iter().any(|a| a.name == api.name) {
                    r.problem(
                        item,
                        &path,
                        format!("API name `{}` is used twice", api.name),
                    );
                    ok = false;
                } else if apis.iter().any(|a| a.base_path == api.base_path) {
                    r.problem(
                        item,
                        &join(&path, "base_path"),
                        format!("base path `{}` is used twice", api.base_path),
                    );
                    ok = false;
                } else {
                    apis.push(api);
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(apis)
}

fn read_api(r: &mut Reader, node: &Node, path: &str) -> Option<Api> {
    let f = r.map(node, path, API_KEYS)?;
    let name = match f.get("name") {
        None => {
            r.missing(node, path, "name");
            None
        }
        Some(n) => r.string(n, &join(path, "name")).map(str::to_string),
    };
    let base_path = match f.get("base_path") {
        None => {
            r.missing(node, path, "base_path");
            None
        }
        Some(n) => {
            let bpath = join(path, "base_path");
            r.string(n, &bpath).and_then(|s| {
                let valid = s.starts_with('/')
                    && (s == "/" || !s.ends_with('/'))
                    && !s.contains("//")
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
                if valid {
                    Some(s.to_string())
                } else {
                    r.problem(
                        n,
                        &bpath,
                        format!("`{s}`: a base path is `/` or `/segment[/segment…]` without a trailing `/`"),
                    );
                    None
                }
            })
        }
    };
    let versions = match f.get("versions") {
        None => {
            r.missing(node, path, "versions");
            None
        }
        Some(n) => {
            let vpath = join(path, "versions");
            r.seq(n, &vpath).and_then(|items| {
                if items.is_empty() {
                    r.problem(n, &vpath, "an API has at least one version");
                    return None;
                }
                let mut versions: Vec<ApiVersion> = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{vpath}[{i}]");
                    match read_version(r, item, &ipath) {
                        Some(v) if versions.iter().any(|o| o.id == v.id) => {
                            r.problem(item, &ipath, format!("version `{}` is listed twice", v.id));
                            ok = false;
                        }
                        Some(v) => versions.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(versions)
            })
        }
    };
    let cache = crate::cache::read(r, path, &f);
    Some(Api {
        name: name?,
        base_path: base_path?,
        versions: versions?,
        cache: cache?,
    })
}

fn read_version(r: &mut Reader, node: &Node, path: &str) -> Option<ApiVersion> {
    let f = r.map(node, path, VERSION_KEYS)?;
    let id = match f.get("id") {
        None => {
            r.missing(node, path, "id");
            None
        }
        Some(n) => {
            let ipath = join(path, "id");
            r.string(n, &ipath).and_then(|s| {
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                {
                    Some(s.to_string())
                } else {
                    r.problem(
                        n,
                        &ipath,
                        format!("`{s}` is not a version id (letters, digits, `-._`)"),
                    );
                    None
                }
            })
        }
    };
    let mut time = |key: &str| -> Option<Option<SystemTime>> {
        let Some(n) = f.get(key) else {
            return Some(None);
        };
        let tpath = join(path, key);
        let s = r.string(n, &tpath)?;
        match parse_timestamp(s) {
            Some(t) => Some(Some(t)),
            None => {
                r.problem(
                    n,
                    &tpath,
                    format!("`{s}` is not a time like 2027-01-31T00:00:00Z"),
                );
                None
            }
        }
    };
    let (since, sunset) = (time("deprecated_at"), time("sunset"));
    let state = match f.get("status") {
        None => {
            r.missing(node, path, "status");
            None
        }
        Some(n) => {
            let spath = join(path, "status");
            match r.string(n, &spath) {
                Some("published") => Some(VersionState::Published),
                Some("retired") => Some(VersionState::Retired),
                Some("disabled") => Some(VersionState::Disabled),
                Some("deprecated") => match (since.flatten(), sunset.flatten()) {
                    (Some(since), Some(sunset)) => Some(VersionState::Deprecated { since, sunset }),
                    _ => {
                        r.problem(
                            n,
                            &spath,
                            "a deprecated version needs `deprecated_at` and `sunset`",
                        );
                        None
                    }
                },
                Some(other) => {
                    r.problem(
                        n,
                        &spath,
                        format!("unknown status `{other}`; use published, deprecated, retired or disabled"),
                    );
                    None
                }
                None => None,
            }
        }
    };
    if !matches!(state, Some(VersionState::Deprecated { .. }) | None) {
        for key in ["deprecated_at", "sunset"] {
            if let Some(n) = f.get(key) {
                r.problem(
                    n,
                    &join(path, key),
                    format!("`{key}` is for deprecated versions"),
                );
            }
        }
    }
    let maintenance = match f.get("maintenance") {
        None => Some(None),
        Some(n) => read_window(r, n, &join(path, "maintenance")).map(Some),
    };
    Some(ApiVersion {
        id: id?,
        state: state?,
        maintenance: maintenance?,
    })
}

fn read_window(r: &mut Reader, node: &Node, path: &str) -> Option<Window> {
    let f = r.map(node, path, WINDOW_KEYS)?;
    let mut time = |key: &str| -> Option<SystemTime> {
        let Some(n) = f.get(key) else {
            r.missing(node, path, key);
            return None;
        };
        let tpath = join(path, key);
        let s = r.string(n, &tpath)?;
        let t = parse_timestamp(s);
        if t.is_none() {
            r.problem(
                n,
                &tpath,
                format!("`{s}` is not a time like 2027-01-31T00:00:00Z"),
            );
        }
        t
    };
    let (start, end) = (time("start"), time("end"));
    let (start, end) = (start?, end?);
    if end <= start {
        r.problem(node, path, "a maintenance window ends after it starts");
        return None;
    }
    Some(Window { start, end })
}

/// An RFC 3339 time with seconds and a `Z` or `±HH:MM` offset (`2027-01-31T08:00:00Z`).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if !s.is_ascii()
        || b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let offset = match s.get(19..)? {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let minutes = num(20, 22)? * 60 + num(23, 25)?;
            if &o[..1] == "+" {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days_in_month = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs = portico_http::civil::days_from_civil(year, month, day) * 86_400
        + hour * 3600
        + minute * 60
        + second
        - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<u64> {
        parse_timestamp(s).map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    #[test]
    fn timestamps() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(secs("2024-02-29T12:30:15Z"), Some(1_709_209_815));
        assert_eq!(secs("2024-02-29T14:30:15+02:00"), Some(1_709_209_815));
        assert_eq!(secs("2024-02-29T10:00:15-02:30"), Some(1_709_209_815));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0200",
            "1969-12-31T23:59:59Z",
            "２024-01-01T00:00:00Z",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }
}
