//! The response cache: its storage (top-level `cache`) and which routes use it (`cache` on a
//! route, or on an API for every proxied route under its base path).

use std::time::Duration;

use crate::read::{Fields, Reader, join};
use crate::yaml::{Kind, Node};

/// Top-level `cache`: where stored responses are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStorage {
    /// The bound of the memory they take, in bytes.
    pub memory: u64,
    /// The disk tier, when there is one.
    pub disk: Option<CacheDisk>,
}

/// `cache.disk`: a directory where what memory evicts is kept, bounded in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheDisk {
    /// The directory (relative paths are relative to the configuration file).
    pub path: std::path::PathBuf,
    /// The bound of the bytes its files take.
    pub size: u64,
}

impl Default for CacheStorage {
    fn default() -> CacheStorage {
        CacheStorage {
            memory: 64 << 20,
            disk: None,
        }
    }
}

/// `cache` on a route or an API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteCache {
    /// Whether the route's responses are cached (`cache: false` turns off what an API's
    /// `cache` would turn on).
    pub enabled: bool,
    /// The largest response body stored; a larger one is relayed uncached.
    pub max_entry_bytes: u64,
    /// Whether responses without explicit freshness get heuristic freshness (RFC 9111
    /// §4.2.2: 10% of the time since `Last-Modified`, at most a day).
    pub heuristic: bool,
    /// Whether a response that sets cookies may be stored and served to other clients.
    pub share_cookies: bool,
    /// Whether `Cache-Status` shows the cache key.
    pub show_key: bool,
    /// How long a request waits for another that is fetching the same response before it
    /// goes to the upstream itself.
    pub wait: Duration,
}

impl RouteCache {
    /// The settings of `cache: true`.
    pub const DEFAULT: RouteCache = RouteCache {
        enabled: true,
        max_entry_bytes: 1 << 20,
        heuristic: false,
        share_cookies: false,
        show_key: false,
        wait: Duration::from_secs(5),
    };
}

const STORAGE_KEYS: &[&str] = &["memory", "disk"];
const DISK_KEYS: &[&str] = &["path", "size"];
const ROUTE_KEYS: &[&str] = &[
    "max_entry_bytes",
    "heuristic",
    "share_cookies",
    "key",
    "wait",
];

/// Top-level `cache: {memory}`.
pub(crate) fn read_storage(r: &mut Reader, node: Option<&Node>) -> Option<CacheStorage> {
    let Some(node) = node else {
        return Some(CacheStorage::default());
    };
    let f = r.map(node, "cache", STORAGE_KEYS)?;
    let memory = match f.get("memory") {
        None => CacheStorage::default().memory,
        Some(n) => {
            let m = r.size(n, "cache.memory")?;
            if m < 1 << 20 {
                r.problem(n, "cache.memory", "the cache needs at least 1MiB");
                return None;
            }
            m
        }
    };
    let disk = match f.get("disk") {
        None => None,
        Some(n) => Some(read_disk(r, n)?),
    };
    Some(CacheStorage { memory, disk })
}

/// `cache.disk: {path, size}`.
fn read_disk(r: &mut Reader, node: &Node) -> Option<CacheDisk> {
    let f = r.map(node, "cache.disk", DISK_KEYS)?;
    let path = match f.get("path") {
        None => {
            r.missing(node, "cache.disk", "path");
            None
        }
        Some(n) => r.string(n, "cache.disk.path").map(|p| r.resolve_path(p)),
    };
    let size = match f.get("size") {
        None => {
            r.missing(node, "cache.disk", "size");
            None
        }
        Some(n) => match r.size(n, "cache.disk.size")? {
            s if s < 1 << 20 => {
                r.problem(n, "cache.disk.size", "the disk tier needs at least 1MiB");
                None
            }
            s => Some(s),
        },
    };
    Some(CacheDisk {
        path: path?,
        size: size?,
    })
}

/// `cache: true | false | {max_entry_bytes, heuristic, share_cookies, key, wait}` at `path`
/// (an entry whose keys are `f`). `Some(None)` when absent.
pub(crate) fn read(r: &mut Reader, path: &str, f: &Fields<'_>) -> Option<Option<RouteCache>> {
    let Some(node) = f.get("cache") else {
        return Some(None);
    };
    let cpath = join(path, "cache");
    if let Kind::Scalar { .. } = node.kind {
        let on = r.boolean(node, &cpath)?;
        return Some(Some(RouteCache {
            enabled: on,
            ..RouteCache::DEFAULT
        }));
    }
    let c = r.map(node, &cpath, ROUTE_KEYS)?;
    let mut out = RouteCache::DEFAULT;
    let mut ok = true;
    if let Some(n) = c.get("max_entry_bytes") {
        // 0 stores nothing: a way to watch `Cache-Status` before storing anything.
        match r.size(n, &join(&cpath, "max_entry_bytes")) {
            Some(v) => out.max_entry_bytes = v,
            None => ok = false,
        }
    }
    let mut flag = |r: &mut Reader, key: &str, slot: &mut bool| {
        if let Some(n) = c.get(key) {
            match r.boolean(n, &join(&cpath, key)) {
                Some(v) => *slot = v,
                None => ok = false,
            }
        }
    };
    flag(r, "heuristic", &mut out.heuristic);
    flag(r, "share_cookies", &mut out.share_cookies);
    flag(r, "key", &mut out.show_key);
    if let Some(n) = c.get("wait") {
        match r.duration(n, &join(&cpath, "wait")) {
            Some(d) => out.wait = d,
            None => ok = false,
        }
    }
    ok.then_some(Some(out))
}
