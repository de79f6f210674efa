//! A route's `transform`: how an upstream's JSON 200 body is projected and masked before it
//! is relayed (as 203 Non-Authoritative Information).

use portico_policy::transform::{Pointer, Transform};

use crate::read::{Fields, Reader, join};
use crate::yaml::{Kind, Node};

/// `transform` on a route.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyTransform {
    /// What is done to the body.
    pub rules: Transform,
    /// Bodies larger than this are relayed untouched (as 200).
    pub max_bytes: u64,
}

/// The default `max_bytes`: 1 MiB.
const DEFAULT_MAX_BYTES: u64 = 1 << 20;

const KEYS: &[&str] = &["remove", "keep", "rename", "add", "max_bytes"];

/// `transform: {remove, keep, rename, add, max_bytes}` (routes with an `upstream`).
pub(crate) fn read(r: &mut Reader, path: &str, f: &Fields<'_>) -> Option<Option<BodyTransform>> {
    let Some(node) = f.get("transform") else {
        return Some(None);
    };
    let tpath = join(path, "transform");
    if f.get("upstream").is_none() {
        r.problem(node, &tpath, "`transform` is for routes with an `upstream`");
        return None;
    }
    let t = r.map(node, &tpath, KEYS)?;
    let mut ok = true;
    let mut pointers = |r: &mut Reader, key: &str| -> Vec<Pointer> {
        let Some(n) = t.get(key) else {
            return Vec::new();
        };
        let kpath = join(&tpath, key);
        let Some(items) = r.seq(n, &kpath) else {
            ok = false;
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{kpath}[{i}]");
            match r.string(item, &ipath).map(Pointer::parse) {
                Some(Ok(p)) => out.push(p),
                Some(Err(msg)) => {
                    r.problem(item, &ipath, msg);
                    ok = false;
                }
                None => ok = false,
            }
        }
        out
    };
    let remove = pointers(r, "remove");
    let keep = pointers(r, "keep");
    let rename = named(r, &tpath, t.get("rename"), "rename", |r, n, p| {
        let name = r.string(n, p)?;
        if name.is_empty() {
            r.problem(n, p, "a new name is not empty");
            return None;
        }
        Some(name.to_string())
    });
    let add = named(r, &tpath, t.get("add"), "add", |_, n, _| {
        Some(crate::yaml::to_json(n))
    });
    let max_bytes = match t.get("max_bytes") {
        None => Some(DEFAULT_MAX_BYTES),
        Some(n) => r.size(n, &join(&tpath, "max_bytes")),
    };
    let (rename, add, max_bytes) = (rename?, add?, max_bytes?);
    if !ok {
        return None;
    }
    if remove.is_empty() && keep.is_empty() && rename.is_empty() && add.is_empty() {
        r.problem(
            node,
            &tpath,
            "a transform needs at least one of `remove`, `keep`, `rename` and `add`",
        );
        return None;
    }
    Some(Some(BodyTransform {
        rules: Transform {
            keep,
            remove,
            rename,
            add,
        },
        max_bytes,
    }))
}

/// `{POINTER: VALUE}`, each pointer naming a member (it ends with a name, not `*`).
fn named<T>(
    r: &mut Reader,
    tpath: &str,
    node: Option<&Node>,
    key: &str,
    value: impl Fn(&mut Reader, &Node, &str) -> Option<T>,
) -> Option<Vec<(Pointer, T)>> {
    let Some(node) = node else {
        return Some(Vec::new());
    };
    let kpath = join(tpath, key);
    let Kind::Map(entries) = &node.kind else {
        r.problem(node, &kpath, "expected a mapping of pointers");
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, kn, v) in entries {
        let ipath = join(&kpath, k);
        match Pointer::parse(k) {
            Ok(p) if p.ends_with_name() => match value(r, v, &ipath) {
                Some(v) => out.push((p, v)),
                None => ok = false,
            },
            Ok(_) => {
                r.problem(kn, &ipath, "the pointer ends with a member's name, not `*`");
                ok = false;
            }
            Err(msg) => {
                r.problem(kn, &ipath, msg);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
