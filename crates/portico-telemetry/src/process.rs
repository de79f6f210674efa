//! The process's own figures, from `/proc/self` (Linux); elsewhere each is `None` and left
//! out of the exposition.

/// What is known of the process now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// OS threads.
    pub threads: Option<u64>,
}

/// Reads the process's figures now.
pub fn read() -> Process {
    #[cfg(target_os = "linux")]
    {
        linux()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Process::default()
    }
}

#[cfg(target_os = "linux")]
fn linux() -> Process {
    let mut p = Process::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // The command name (field 2) is in parentheses and may hold spaces: the fields that
        // follow are counted from its closing parenthesis.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // `rest` starts at field 3 (state): field N is fields[N - 3].
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            let ticks = rustix::param::clock_ticks_per_second() as f64;
            if let (Some(utime), Some(stime)) = (field(14), field(15))
                && ticks > 0.0
            {
                p.cpu_seconds = Some((utime + stime) as f64 / ticks);
            }
            p.threads = field(20);
            p.virtual_bytes = field(23);
            p.resident_bytes = field(24).map(|pages| pages * rustix::param::page_size() as u64);
        }
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    p.max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    p
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let p = super::read();
        assert!(p.resident_bytes.is_some_and(|b| b > 1 << 20), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.threads.is_some_and(|n| n >= 1), "{p:?}");
        assert!(p.cpu_seconds.is_some(), "{p:?}");
        let f = std::fs::File::open("/proc/self/stat").expect("open");
        let more = super::read().open_fds;
        drop(f);
        assert!(more > p.open_fds, "{more:?} {p:?}");
    }
}
