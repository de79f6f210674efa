//! Everything a static request does to the file system, done in one trip to tokio's blocking
//! pool: resolve the path, check it is inside the root, open the file, find the precompressed
//! sibling the client prefers, and read the file if it is small.
//!
//! The relative path has no `.`/`..` segments and no separators inside a segment (`path.rs`),
//! so a symlink is the only way out of the root. The usual case, no symlink at all, is checked
//! cheaply: each directory under the root is `lstat`ed and the file is opened with
//! `O_NOFOLLOW`. When anything on the way is a symlink (or the open fails), the path is
//! resolved with `canonicalize` and must still be inside the root: a symlink that stays inside
//! is followed, one that leads out is a 404. Files are always opened with `O_NOFOLLOW`, so the
//! last component cannot be swapped for a symlink after the check, and with `O_NONBLOCK`, so a
//! FIFO placed in the root cannot hang the thread; anything but a regular file is a 404.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::path::RelPath;

/// Files up to this size are read whole while they are opened, so a typical asset costs one
/// trip to the blocking pool; larger ones are streamed in pieces of [`READ_PIECE`].
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Bytes read per trip to the blocking pool when streaming a large file.
pub(crate) const READ_PIECE: usize = 64 * 1024;

/// A precompressed sibling the route may serve: coding name and file suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sibling {
    pub(crate) coding: &'static str,
    pub(crate) suffix: &'static str,
}

/// The representation found for a request.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) file: File,
    pub(crate) meta: Metadata,
    /// `None` for the file itself, else the sibling served.
    pub(crate) sibling: Option<Sibling>,
    /// The whole content, when the file is small.
    pub(crate) data: Option<Bytes>,
}

/// What opening found.
#[derive(Debug)]
pub(crate) enum Opened {
    Found(Box<Variant>),
    /// No regular file at this path inside the root.
    Missing,
    /// The file exists, but the client accepts none of its encodings: these exist.
    NoAcceptableCoding(Vec<&'static str>),
}

/// Opens the file `rel` names under `root` (canonical), trying `candidates` in order (`None`
/// is the file itself, `Some` a sibling); `siblings` are all the route's, for a 406's list.
/// This may block on the disk: it runs on tokio's blocking pool.
pub(crate) fn open(
    root: &Path,
    rel: &RelPath,
    candidates: &[Option<Sibling>],
    siblings: &[Sibling],
) -> io::Result<Opened> {
    let Some((real, file, meta)) = resolve(root, rel) else {
        return Ok(Opened::Missing);
    };
    select(
        (file, meta),
        |s| Ok(open_regular(&with_suffix(&real, s.suffix))),
        |file, len| read_at(file, 0, len),
        candidates,
        siblings,
    )
}

/// The steps after the file itself is found, shared by the blocking path and the cached one
/// (`cached.rs`), so both answer alike: the first candidate that exists is served, read whole
/// when small; when none does, the codings that exist are listed. `sibling` opens a sibling
/// (`Ok(None)` when there is none) and `read` reads a small file; either may give up with
/// `E`.
pub(crate) fn select<E>(
    original: (File, Metadata),
    mut sibling: impl FnMut(Sibling) -> Result<Option<(File, Metadata)>, E>,
    mut read: impl FnMut(&File, usize) -> Result<Bytes, E>,
    candidates: &[Option<Sibling>],
    siblings: &[Sibling],
) -> Result<Opened, E> {
    let mut original = Some(original);
    for candidate in candidates {
        let found = match candidate {
            None => original.take().map(|(f, m)| (f, m, None)),
            Some(s) => sibling(*s)?.map(|(f, m)| (f, m, Some(*s))),
        };
        if let Some((file, meta, sibling)) = found {
            let data = if meta.len() <= SMALL_FILE {
                Some(read(&file, meta.len() as usize)?)
            } else {
                None
            };
            return Ok(Opened::Found(Box::new(Variant {
                file,
                meta,
                sibling,
                data,
            })));
        }
    }
    let mut available = vec!["identity"];
    for s in siblings {
        if sibling(*s)?.is_some() {
            available.push(s.coding);
        }
    }
    Ok(Opened::NoAcceptableCoding(available))
}

/// The real path of the regular file `rel` names inside `root`, opened.
fn resolve(root: &Path, rel: &RelPath) -> Option<(PathBuf, File, Metadata)> {
    let direct = rel.under(root);
    if no_symlinked_directory(root, rel)
        && let Some((file, meta)) = open_regular(&direct)
    {
        return Some((direct, file, meta));
    }
    let real = std::fs::canonicalize(&direct).ok()?;
    if !real.starts_with(root) {
        tracing::debug!(path = %real.display(), "static: the path resolves outside the root");
        return None;
    }
    let (file, meta) = open_regular(&real)?;
    Some((real, file, meta))
}

/// Whether every directory between `root` and the file is a real directory, not a symlink.
fn no_symlinked_directory(root: &Path, rel: &RelPath) -> bool {
    let mut dir = root.to_path_buf();
    rel.directories().all(|seg| {
        dir.push(seg);
        std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` for reading if it is a regular file, not following a final symlink.
pub(crate) fn open_regular(path: &Path) -> Option<(File, Metadata)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((file, meta))
}

/// Reads `len` bytes at `offset` without blocking if they are in the page cache, else on
/// tokio's blocking pool.
pub(crate) async fn read_piece(
    file: std::sync::Arc<File>,
    offset: u64,
    len: usize,
) -> io::Result<Bytes> {
    #[cfg(target_os = "linux")]
    if let Some(data) = super::cached::read_nowait(&file, offset, len) {
        return Ok(data);
    }
    tokio::task::spawn_blocking(move || read_at(&file, offset, len))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Reads exactly `len` bytes at `offset`.
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, offset)?;
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut buf)?;
    }
    Ok(Bytes::from(buf))
}

/// A hash of what identifies this file on this machine: device, inode and status-change
/// time. It goes into the entity tag so that a file replaced or rewritten in place gets a new
/// tag even when its size and modification time are the same (tools that preserve or fix
/// modification times: `rsync -a`, reproducible builds). Hashed, so the tag does not disclose
/// inode numbers.
pub(crate) fn file_identity(meta: &Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for word in [
            meta.dev(),
            meta.ino(),
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            for byte in word.to_le_bytes() {
                h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}
