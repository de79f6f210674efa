//! The disk tier: what memory evicts is written to a directory, bounded in bytes, and read
//! back (and kept in memory again) when it is asked for; it outlives the process.
//!
//! One file per target, named by the SHA-256 of its key, holding all its variants. A file is
//! written whole to a temporary name and renamed into place, and carries the SHA-256 of its
//! content: a write cut short (a crash, a full disk) leaves either no file, a temporary one
//! (removed at start), or one whose length or digest is wrong, which is removed when it is
//! found and never served. Writes happen on a thread of their own; a write that fails (a full
//! disk) is counted and the entry is simply not kept there.
//!
//! The encoding is Portico's own (length-prefixed fields, big-endian integers): the entries
//! are bytes and a few integers, and the format must be readable by the next version or
//! refused by its version byte.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use bytes::Bytes;
use portico_http::caching::{ResponseDirectives, Timing};
use sha2::{Digest, Sha256};

use crate::{Entry, StoredFields, Variants};

/// The start of every file: a name and a format version.
const MAGIC: &[u8; 8] = b"PTCACHE1";
/// What a file name ends with once it is complete.
const SUFFIX: &str = ".entry";
/// What a file being written ends with.
const PARTIAL: &str = ".partial";

/// What the index knows of a file.
#[derive(Debug)]
struct Item {
    bytes: u64,
    /// Its place in the order of writes (the oldest goes first when the bound is reached).
    seq: u64,
    /// The routes whose responses it holds.
    routes: Vec<Arc<str>>,
}

#[derive(Debug, Default)]
struct Index {
    items: HashMap<Arc<str>, Item>,
    order: BTreeMap<u64, Arc<str>>,
    bytes: u64,
    next: u64,
}

impl Index {
    fn insert(&mut self, key: Arc<str>, bytes: u64, routes: Vec<Arc<str>>) {
        self.remove(&key);
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key.clone());
        self.bytes += bytes;
        self.items.insert(key, Item { bytes, seq, routes });
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.items.remove(key) {
            Some(old) => {
                self.order.remove(&old.seq);
                self.bytes -= old.bytes;
                true
            }
            None => false,
        }
    }
}

/// Work for the writer thread.
enum Job {
    Write(Arc<str>, Arc<Variants>),
    Remove(Arc<str>),
    /// Answered once everything sent before it is done.
    Barrier(mpsc::Sender<()>),
}

/// The disk tier of a cache.
pub(crate) struct Disk {
    dir: PathBuf,
    max_bytes: u64,
    index: Arc<Mutex<Index>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer, joined when the disk tier goes (so what it was given is written).
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Writes that failed (a full disk, a directory gone).
    pub(crate) failed_writes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("dir", &self.dir).finish()
    }
}

impl Drop for Disk {
    /// Lets the writer finish what it was given, then stop.
    fn drop(&mut self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(writer) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = writer.join();
        }
    }
}

/// The file of a key.
fn file_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    name.push_str(SUFFIX);
    name
}

impl Disk {
    /// Opens (creating it if needed) the directory, removes what an interrupted write left,
    /// and indexes the files that are whole, oldest first by modification time.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Disk> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(PARTIAL) {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(SUFFIX) {
                continue;
            }
            match read_head(&path) {
                Ok((key, routes, bytes)) if file_name(&key) == name => {
                    let modified = entry.metadata().and_then(|m| m.modified()).ok();
                    found.push((modified, key, routes, bytes));
                }
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        found.sort_by_key(|f| f.0);
        let mut index = Index::default();
        for (_, key, routes, bytes) in found {
            index.insert(key.into(), bytes, routes);
        }
        let index = Arc::new(Mutex::new(index));
        let failed_writes = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            max_bytes,
            index: index.clone(),
            failed: failed_writes.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("portico-cache-disk".into())
            .spawn(move || writer.run(rx))?;
        let disk = Disk {
            dir: dir.to_path_buf(),
            max_bytes,
            index,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            failed_writes,
        };
        disk.trim();
        Ok(disk)
    }

    fn send(&self, job: Job) {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        // The writer lives as long as the sender: it cannot have gone.
        if let Some(jobs) = jobs.as_ref() {
            let _ = jobs.send(job);
        }
    }

    /// Writes a target's variants (evicted from memory), in the background.
    pub(crate) fn spill(&self, key: Arc<str>, variants: Arc<Variants>) {
        self.send(Job::Write(key, variants));
    }

    /// Sends `done` a message once every job sent before has been done.
    pub(crate) fn barrier(&self, done: mpsc::Sender<()>) {
        self.send(Job::Barrier(done));
    }

    /// Forgets a target (now, for reads; its file is removed in the background).
    pub(crate) fn remove(&self, key: &str) {
        let had = self
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        if had {
            self.send(Job::Remove(key.into()));
        }
    }

    /// Whether the disk holds the target.
    pub(crate) fn contains(&self, key: &str) -> bool {
        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        index.items.contains_key(key)
    }

    /// The keys held for which `doomed(key, routes)` is true.
    pub(crate) fn keys_where(&self, doomed: impl Fn(&str, &[Arc<str>]) -> bool) -> Vec<Arc<str>> {
        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        index
            .items
            .iter()
            .filter(|(k, item)| doomed(k, &item.routes))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The bytes the files take.
    pub(crate) fn bytes(&self) -> u64 {
        self.index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// Reads a target's variants (blocking: call it where blocking is allowed). A file that
    /// is not whole, or not this key's, is removed and read as nothing.
    pub(crate) fn read(&self, key: &str) -> Option<Variants> {
        let path = self.dir.join(file_name(key));
        match read_file(&path) {
            Ok((stored_key, variants)) if stored_key == key => Some(variants),
            Ok(_) | Err(_) => {
                self.remove(key);
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Removes the oldest files until the bound holds.
    fn trim(&self) {
        trim(&self.dir, self.max_bytes, &self.index);
    }
}

fn trim(dir: &Path, max_bytes: u64, index: &Mutex<Index>) {
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    while index.bytes > max_bytes {
        let Some((_, key)) = index.order.pop_first() else {
            break;
        };
        if let Some(item) = index.items.remove(&key) {
            index.bytes -= item.bytes;
        }
        let _ = fs::remove_file(dir.join(file_name(&key)));
    }
}

/// The thread that writes and removes files.
struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    index: Arc<Mutex<Index>>,
    failed: Arc<AtomicU64>,
}

impl Writer {
    fn run(self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Write(key, variants) => {
                    let bytes = encode(&key, &variants);
                    let len = bytes.len() as u64;
                    if len > self.max_bytes {
                        continue;
                    }
                    match self.write(&key, &bytes) {
                        Ok(()) => {
                            let routes = routes_of(&variants);
                            let mut index =
                                self.index.lock().unwrap_or_else(PoisonError::into_inner);
                            index.insert(key, len, routes);
                        }
                        Err(_) => {
                            self.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    trim(&self.dir, self.max_bytes, &self.index);
                }
                Job::Remove(key) => {
                    // Unless it was written again meanwhile.
                    let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
                    if !index.items.contains_key(&key) {
                        let _ = fs::remove_file(self.dir.join(file_name(&key)));
                    }
                }
                Job::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Writes to a temporary name, then renames: the file is whole or absent.
    fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let name = file_name(key);
        let partial = self.dir.join(format!("{name}{PARTIAL}"));
        let done = (|| {
            let mut f = fs::File::create(&partial)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            fs::rename(&partial, self.dir.join(&name))
        })();
        if done.is_err() {
            let _ = fs::remove_file(&partial);
        }
        done
    }
}

fn routes_of(v: &Variants) -> Vec<Arc<str>> {
    let mut routes: Vec<Arc<str>> = Vec::new();
    for e in &v.entries {
        if !routes.contains(&e.route) {
            routes.push(e.route.clone());
        }
    }
    routes
}

// The encoding.

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn opt(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
}

struct In<'a>(&'a [u8]);

fn torn() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "not a whole cache entry")
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(torn());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn opt(&mut self) -> io::Result<Option<u64>> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.u64()?),
        })
    }
    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = usize::try_from(self.u64()?).map_err(|_| torn())?;
        self.take(n)
    }
    fn text(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| torn())
    }
}

/// `MAGIC | total length | key | routes | names | entries | SHA-256 of all before it`.
fn encode(key: &str, v: &Variants) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(
        256 + v.entries.iter().map(|e| e.body.len() + 512).sum::<usize>(),
    ));
    o.0.extend_from_slice(MAGIC);
    o.u64(0); // the total length, filled in below
    o.bytes(key.as_bytes());
    let routes = routes_of(v);
    o.u64(routes.len() as u64);
    for r in &routes {
        o.bytes(r.as_bytes());
    }
    o.u64(v.names.len() as u64);
    for n in v.names.iter() {
        o.bytes(n.as_bytes());
    }
    o.u64(v.entries.len() as u64);
    for e in &v.entries {
        encode_entry(&mut o, e);
    }
    let total = (o.0.len() + 32) as u64;
    o.0[8..16].copy_from_slice(&total.to_be_bytes());
    let digest = Sha256::digest(&o.0);
    o.0.extend_from_slice(&digest);
    o.0
}

fn encode_entry(o: &mut Out, e: &Entry) {
    o.bytes(e.route.as_bytes());
    o.u16(e.status);
    o.u64(e.headers.len() as u64);
    for (n, v) in e.headers.iter() {
        o.bytes(n);
        o.bytes(v);
    }
    o.bytes(&e.body);
    let t = &e.timing;
    o.u64(t.request_time);
    o.u64(t.response_time);
    o.opt(t.date);
    o.opt(t.age);
    o.u8(u8::from(t.age_invalid));
    match t.expires {
        None => o.u8(0),
        Some(None) => o.u8(1),
        Some(Some(x)) => {
            o.u8(2);
            o.u64(x);
        }
    }
    o.opt(t.last_modified);
    let d = &e.directives;
    let flags = [
        d.no_store,
        d.no_cache,
        d.private,
        d.public,
        d.must_revalidate,
        d.proxy_revalidate,
        d.must_understand,
        d.conflicting,
    ];
    o.u8(flags
        .iter()
        .enumerate()
        .fold(0, |acc, (i, &f)| acc | (u8::from(f) << i)));
    o.opt(d.max_age);
    o.opt(d.s_maxage);
    o.opt(d.stale_while_revalidate);
    o.opt(d.stale_if_error);
    o.u64(e.lifetime);
    o.u64(e.vary.len() as u64);
    for v in &e.vary {
        match v {
            Some(b) => {
                o.u8(1);
                o.bytes(b);
            }
            None => o.u8(0),
        }
    }
}

fn decode_entry(i: &mut In<'_>) -> io::Result<Entry> {
    let route: Arc<str> = i.text()?.into();
    let status = i.u16()?;
    let count = i.u64()?;
    let mut fields = Vec::new();
    for _ in 0..count {
        fields.push((i.bytes()?, i.bytes()?));
    }
    let headers = StoredFields::new(fields);
    let body = Bytes::copy_from_slice(i.bytes()?);
    let timing = Timing {
        request_time: i.u64()?,
        response_time: i.u64()?,
        date: i.opt()?,
        age: i.opt()?,
        age_invalid: i.u8()? != 0,
        expires: match i.u8()? {
            0 => None,
            1 => Some(None),
            _ => Some(Some(i.u64()?)),
        },
        last_modified: i.opt()?,
    };
    let flags = i.u8()?;
    let bit = |n: u8| flags & (1 << n) != 0;
    let directives = ResponseDirectives {
        no_store: bit(0),
        no_cache: bit(1),
        private: bit(2),
        public: bit(3),
        must_revalidate: bit(4),
        proxy_revalidate: bit(5),
        must_understand: bit(6),
        conflicting: bit(7),
        max_age: i.opt()?,
        s_maxage: i.opt()?,
        stale_while_revalidate: i.opt()?,
        stale_if_error: i.opt()?,
    };
    let lifetime = i.u64()?;
    let count = i.u64()?;
    let mut vary = Vec::new();
    for _ in 0..count {
        vary.push(match i.u8()? {
            0 => None,
            _ => Some(Bytes::copy_from_slice(i.bytes()?)),
        });
    }
    Ok(Entry {
        route,
        status,
        headers,
        body,
        timing,
        directives,
        lifetime,
        vary,
    })
}

/// Checks a file's magic, length and digest; returns its content after the length.
fn whole(data: &[u8]) -> io::Result<&[u8]> {
    if data.len() < 16 + 32 || &data[..8] != MAGIC {
        return Err(torn());
    }
    let mut total = [0u8; 8];
    total.copy_from_slice(&data[8..16]);
    if u64::from_be_bytes(total) != data.len() as u64 {
        return Err(torn());
    }
    let (content, digest) = data.split_at(data.len() - 32);
    if Sha256::digest(content).as_slice() != digest {
        return Err(torn());
    }
    Ok(&content[16..])
}

/// A whole file: its key and variants.
fn read_file(path: &Path) -> io::Result<(String, Variants)> {
    let data = fs::read(path)?;
    let mut i = In(whole(&data)?);
    let key = i.text()?;
    let routes = i.u64()?;
    for _ in 0..routes {
        i.bytes()?;
    }
    let count = i.u64()?;
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(i.text()?);
    }
    let count = i.u64()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        entries.push(Arc::new(decode_entry(&mut i)?));
    }
    Ok((
        key,
        Variants {
            names: names.into(),
            entries,
        },
    ))
}

/// A file's key, routes and length, read from its start; its length must be what it says
/// (a file cut short is not whole). The digest is checked when it is read in full.
fn read_head(path: &Path) -> io::Result<(String, Vec<Arc<str>>, u64)> {
    let mut f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; usize::try_from(len.min(64 * 1024)).map_err(|_| torn())?];
    f.read_exact(&mut head)?;
    if head.len() < 16 || &head[..8] != MAGIC {
        return Err(torn());
    }
    let mut total = [0u8; 8];
    total.copy_from_slice(&head[8..16]);
    if u64::from_be_bytes(total) != len {
        return Err(torn());
    }
    let mut i = In(&head[16..]);
    let key = i.text()?;
    let count = i.u64()?;
    let mut routes = Vec::new();
    for _ in 0..count.min(1024) {
        routes.push(Arc::from(i.text()?));
    }
    Ok((key, routes, len))
}
