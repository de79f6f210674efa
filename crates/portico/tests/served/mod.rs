//! A `portico serve` run as its own process, for the tests that need the binary itself: its
//! listeners' addresses read from its log, signals, and a graceful stop.
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// The value of `var`, which `.ci/run` always sets (a tool's path, a service's URL). Where it
/// is not set, says that `what` did not run and gives `None`; in CI that fails the test.
pub fn from_ci(var: &str, what: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(var);
    if value.is_none() {
        missing(&format!("{var} is not set (.ci/run sets it)"), what);
    }
    value
}

/// Headless Chromium, if the machine has it (`.ci/run` installs it; in CI its absence fails
/// the test); `what` is what does not run without it.
pub fn chromium(what: &str) -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        missing("no Chromium on this machine (.ci/run installs it)", what);
    }
    found
}

/// Something a test needs is missing (`why`): a failure in CI, a note elsewhere.
fn missing(why: &str, what: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("{why}: {what} not run");
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// One request on a connection of its own (the request should say `Connection: close`); the
/// whole answer as text.
pub fn exchange(address: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Writes a configuration file `name` into `dir`.
pub fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `portico serve`, started from `command`, with its stderr kept open (so its last
/// lines have somewhere to go) and what it logged until it listened.
pub struct Served {
    pub child: std::process::Child,
    /// Its stderr, until [`Served::drain`] hands it to a thread.
    stderr: Option<BufReader<std::process::ChildStderr>>,
    pub logged: String,
}

impl Served {
    /// `portico serve --config <config>`; stdout as `stdout` says.
    pub fn start(config: &std::path::Path, stdout: Stdio) -> Served {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(config)
            .stdout(stdout);
        Served::spawn(command)
    }

    /// Any command that execs `portico serve`; waits for its "portico listening" line.
    pub fn spawn(mut command: Command) -> Served {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = Some(BufReader::new(child.stderr.take().unwrap()));
        let mut served = Served {
            child,
            stderr,
            logged: String::new(),
        };
        served.logged = served.read_until("portico listening");
        served
    }

    /// Reads stderr until a line containing `needle`; returns what was read.
    pub fn read_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        let stderr = self.stderr.as_mut().expect("stderr is being drained");
        while !seen.contains(needle) {
            assert!(
                stderr.read_line(&mut seen).unwrap() > 0,
                "stderr ended before {needle:?}: {seen}"
            );
        }
        seen
    }

    /// The address of the listener whose line contains `what` (`"listening"` or `"(TLS)"`).
    pub fn address(&mut self, what: &str) -> String {
        if !self.logged.lines().any(|l| l.contains(what)) {
            let more = self.read_until(what);
            self.logged.push_str(&more);
        }
        let line = self.logged.lines().find(|l| l.contains(what)).unwrap();
        line.split("address=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// From now on stderr is read, and dropped, by a thread of its own: a server that logs a
    /// lot never blocks on a full pipe while the test does something else.
    pub fn drain(&mut self) {
        if let Some(mut stderr) = self.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        }
    }

    /// Everything left on stderr (nothing once drained).
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        if let Some(stderr) = self.stderr.as_mut() {
            stderr.read_to_string(&mut rest).unwrap();
        }
        rest
    }

    /// SIGTERM, a graceful stop with exit status 0; everything it logged on stderr.
    pub fn finish(mut self) -> String {
        self.signal("TERM");
        let rest = self.rest();
        assert!(self.child.wait().unwrap().success(), "{rest}");
        format!("{}{rest}", self.logged)
    }

    /// SIGTERM: a graceful stop with exit status 0.
    pub fn stop(mut self) {
        self.signal("TERM");
        let rest = self.rest();
        assert!(self.child.wait().unwrap().success(), "{rest}");
    }
}
