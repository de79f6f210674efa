//! The hot path on Linux: resolve, open and read a file without ever waiting for a disk, so it
//! runs on the event loop instead of tokio's blocking pool. A trip to the pool costs more than
//! everything else a static request does (see docs/performance.md); waiting for a disk on the
//! event loop would stall every other connection of the worker. This does neither.
//!
//! - `openat2` with `RESOLVE_CACHED` completes only when every component of the path is in
//!   the kernel's lookup cache, and fails with `EAGAIN` otherwise; `RESOLVE_BENEATH` and
//!   `RESOLVE_NO_SYMLINKS` make the kernel itself refuse anything outside the root and any
//!   symlink on the way.
//! - `preadv2` with `RWF_NOWAIT` reads only what the page cache holds.
//!
//! Whatever this path cannot finish (a lookup or a read that would wait, a symlink, a kernel
//! without these calls) it hands to the blocking path in `open.rs`, which decides the same
//! way (both end in `open::select`). A missing file is answered here: the lookup cache knows
//! that a name is absent as surely as the disk does.

use std::fs::{File, Metadata};
use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::{Errno, ReadWriteFlags};

use super::open::{Opened, Sibling, select};
use super::path::RelPath;

/// This path cannot decide; use the blocking one.
#[derive(Debug)]
pub(crate) struct Defer;

/// A static route's root, open as a directory to resolve paths beneath.
pub(crate) struct Root {
    dir: OwnedFd,
    /// Cleared when the kernel turns out not to have `openat2` with `RESOLVE_CACHED` (before
    /// Linux 5.12, or filtered by a sandbox), so requests stop trying.
    usable: AtomicBool,
}

impl Root {
    /// Opens `root` (canonical); `None` when it cannot be, and then every request takes the
    /// blocking path.
    pub(crate) fn open(root: &Path) -> Option<Root> {
        let dir = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        Some(Root {
            dir,
            usable: AtomicBool::new(true),
        })
    }

    /// Resolves, opens and (when small) reads the file `rel` names, as `open::open` does, or
    /// [`Defer`]s.
    pub(crate) fn open_file(
        &self,
        rel: &RelPath,
        candidates: &[Option<Sibling>],
        siblings: &[Sibling],
    ) -> Result<Opened, Defer> {
        if !self.usable.load(Ordering::Relaxed) {
            return Err(Defer);
        }
        let path = rel.to_string();
        let Some(original) = self.open_regular(&path)? else {
            return Ok(Opened::Missing);
        };
        select(
            original,
            |s| self.open_regular(&format!("{path}{}", s.suffix)),
            |file, len| read_nowait(file, 0, len).ok_or(Defer),
            candidates,
            siblings,
        )
    }

    /// Opens `path` under the root if it is a regular file (`Ok(None)` when there is none).
    fn open_regular(&self, path: &str) -> Result<Option<(File, Metadata)>, Defer> {
        let opened = rustix::fs::openat2(
            &self.dir,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::CACHED,
        );
        match opened {
            Ok(fd) => {
                let file = File::from(fd);
                // fstat on an open file reads the inode already in memory.
                let meta = file.metadata().map_err(|_| Defer)?;
                Ok(meta.is_file().then_some((file, meta)))
            }
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(Errno::NOSYS | Errno::INVAL | Errno::PERM) => {
                // No openat2, no RESOLVE_CACHED, or a sandbox refusing the call: stop trying.
                self.usable.store(false, Ordering::Relaxed);
                Err(Defer)
            }
            // EAGAIN (not cached), ELOOP (a symlink), EXDEV (out of the root), anything else.
            Err(_) => Err(Defer),
        }
    }
}

/// Reads exactly `len` bytes at `offset` if the page cache holds them all; `None` otherwise.
pub(crate) fn read_nowait(file: &File, offset: u64, len: usize) -> Option<Bytes> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let read = rustix::io::preadv2(
            file,
            &mut [IoSliceMut::new(&mut buf[done..])],
            offset + done as u64,
            ReadWriteFlags::NOWAIT,
        );
        match read {
            Ok(n) if n > 0 => done += n,
            // The end of the file came first (it shrank), EAGAIN, or no RWF_NOWAIT.
            _ => return None,
        }
    }
    Some(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::super::open;
    use super::*;

    const GZIP: Sibling = Sibling {
        coding: "gzip",
        suffix: ".gz",
    };
    const BR: Sibling = Sibling {
        coding: "br",
        suffix: ".br",
    };

    fn rel(p: &str) -> RelPath {
        RelPath::parse(p).expect("a valid relative path")
    }

    /// The same answer: same kind, same sibling, same bytes, same list.
    fn same(fast: &Opened, blocking: &Opened) -> bool {
        match (fast, blocking) {
            (Opened::Missing, Opened::Missing) => true,
            (Opened::NoAcceptableCoding(a), Opened::NoAcceptableCoding(b)) => a == b,
            (Opened::Found(a), Opened::Found(b)) => {
                a.sibling == b.sibling && a.meta.len() == b.meta.len() && a.data == b.data
            }
            _ => false,
        }
    }

    #[test]
    fn answers_like_the_blocking_path_or_defers() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::create_dir(root.join("d")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), "secret").expect("write");
        std::fs::write(root.join("a.txt"), "alpha").expect("write");
        std::fs::write(root.join("a.txt.gz"), "gz").expect("write");
        std::fs::write(root.join("sub/b.txt"), "beta").expect("write");
        std::fs::write(
            root.join("big.bin"),
            vec![7u8; open::SMALL_FILE as usize + 1],
        )
        .expect("write");
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("in.txt")).expect("symlink");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out.txt"))
            .expect("symlink");
        let fifo = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status();
        assert!(fifo.expect("mkfifo runs").success());
        let root = std::fs::canonicalize(&root).expect("canonical root");
        let cached = Root::open(&root).expect("the root opens");

        let siblings = [GZIP, BR];
        let candidate_sets: [&[Option<Sibling>]; 3] =
            [&[None], &[Some(BR), Some(GZIP), None], &[Some(BR)]];
        let paths = [
            "a.txt",
            "big.bin",
            "sub/b.txt",
            "missing",
            "sub/missing",
            "a.txt/x",
            "fifo",
            "d",
            "in.txt",
            "out.txt",
        ];
        for path in paths {
            for candidates in candidate_sets {
                let blocking = open::open(&root, &rel(path), candidates, &siblings)
                    .expect("the blocking path answers");
                if let Ok(fast) = cached.open_file(&rel(path), candidates, &siblings) {
                    assert!(
                        same(&fast, &blocking),
                        "{path} {candidates:?}: {fast:?} vs {blocking:?}"
                    );
                }
            }
        }
        // Symlinks are never followed here: the blocking path decides them.
        assert!(cached.open_file(&rel("in.txt"), &[None], &[]).is_err());
        assert!(cached.open_file(&rel("out.txt"), &[None], &[]).is_err());
        // Files just written are in the kernel's caches, so on a kernel with RESOLVE_CACHED
        // (5.12+, this machine's) the usual cases never need the blocking pool.
        let found = cached.open_file(&rel("sub/b.txt"), &[Some(GZIP), None], &siblings);
        if cached.usable.load(Ordering::Relaxed) {
            assert!(
                matches!(found, Ok(Opened::Found(ref v)) if v.data.as_deref() == Some(&b"beta"[..]))
            );
            let gz = cached.open_file(&rel("a.txt"), &[Some(GZIP), None], &siblings);
            assert!(matches!(gz, Ok(Opened::Found(ref v)) if v.sibling == Some(GZIP)));
            assert!(matches!(
                cached.open_file(&rel("missing"), &[None], &[]),
                Ok(Opened::Missing)
            ));
        }
    }

    #[test]
    fn reads_without_waiting_what_the_page_cache_holds() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").expect("write");
        let file = File::open(&path).expect("open");
        if let Some(data) = read_nowait(&file, 2, 5) {
            assert_eq!(&data[..], b"23456");
        }
        // Past the end: never a short answer.
        assert!(read_nowait(&file, 8, 5).is_none());
    }
}
