//! The `portico` command: `serve`, `check-config`, `apply`, `export`, `sign`, `codes`.

#![forbid(unsafe_code)]

mod telemetry;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use portico_admin::Admin;
use portico_admin::LimitReset;
use portico_config::Config;
use portico_gateway::idempotency::{KeyStore, MemoryKeys};
use portico_gateway::jobs::{JobStore, Jobs, MemoryJobs};
use portico_gateway::limits::{MonotonicClock, RateLimiters};
use portico_gateway::quota::{MemoryLedger, QuotaFuture, QuotaLedger, Quotas};
use portico_gateway::tokens::{MemoryTokens, StoredGrant, TokenFuture, TokenStore};
use portico_gateway::{AccessLogSink, BodyCounts, EgressService, Gateway};
use portico_policy::failures::FailureLimiter;
use portico_server::tls::{self, Tls};
use portico_server::{Listener, Reloadable, RouteStats};
use portico_store::{Backend, Store};
use portico_telemetry::Metrics;

/// The built-in quickstart: a demo API answered by the echo handler.
const QUICKSTART: &str = include_str!("../../../examples/quickstart.yaml");

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "An API gateway whose every status code means what its published table says."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the built-in quickstart on 127.0.0.1:8080 without --config).
    Serve {
        /// Configuration file (YAML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: silent and exit 0 when valid, every problem and exit 1 otherwise.
    CheckConfig {
        /// Configuration file (YAML).
        file: PathBuf,
    },
    /// Make the store hold what FILE says (upstreams, routes, apis, plans, projects and their
    /// consumers), printing each change; items are matched by name.
    Apply {
        /// The documents (YAML), as `portico export` writes them.
        file: PathBuf,
        /// The configuration file: its `storage` is the store, and its own model is what the
        /// documents join.
        #[arg(long)]
        config: PathBuf,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the store's documents to standard output as a file that `apply` takes back
    /// unchanged (credentials are left out).
    Export {
        /// The configuration file whose `storage` is the store.
        #[arg(long)]
        config: PathBuf,
    },
    /// Purge cached responses on every node that follows the store (within a second): one
    /// URL's (`--url http://host/path?query`, or `/path?query` for every host), those under a
    /// prefix, or everything a route stored.
    Purge {
        /// The configuration file whose `storage` is the store.
        #[arg(long)]
        config: PathBuf,
        /// One URL.
        #[arg(long, group = "what")]
        url: Option<String>,
        /// Every URL that starts with this.
        #[arg(long, group = "what")]
        prefix: Option<String>,
        /// Everything this route stored.
        #[arg(long, group = "what")]
        route: Option<String>,
    },
    /// Check an HTTP API against the status-code contract from outside, row by row: exit 0
    /// when nothing failed, 1 when a row failed, 2 when the target cannot be probed at all.
    Probe(ProbeArgs),
    /// Print the headers that sign a request (`SDK-HMAC-SHA256`, docs/signing.md): `X-Sdk-Date`,
    /// `Authorization`, and `X-Sdk-Content-Sha256` when asked. The secret key comes from
    /// PORTICO_SECRET_KEY, so that it stays out of shell history.
    Sign {
        /// The request's URL, `http://host:port/path?query`.
        url: String,
        /// The access key id.
        #[arg(long)]
        access_key: String,
        /// The method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// A header to sign, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// The body.
        #[arg(long, short = 'd', default_value = "")]
        data: String,
        /// Sign the body's digest as `X-Sdk-Content-Sha256`, so the gateway checks the
        /// signature before it reads the body.
        #[arg(long)]
        content_sha256: bool,
    },
    /// OpenAPI documents as Portico reads them.
    Openapi {
        #[command(subcommand)]
        what: OpenapiCommand,
    },
    /// Print the status-code contract table and what Portico does for each code.
    Codes {
        /// Print the error-code catalog as Markdown (docs/errors.md) instead.
        #[arg(long, conflicts_with = "contract")]
        errors: bool,
        /// Print the contract status as Markdown (docs/contract.md) instead.
        #[arg(long)]
        contract: bool,
    },
}

#[derive(Subcommand)]
enum OpenapiCommand {
    /// Print CONFIG with each `openapi:` entry written out as the routes it stands for (one
    /// per operation), as YAML that `check-config` accepts.
    Routes {
        /// Configuration file (YAML).
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { file } => match portico_config::load(&file) {
            // What the file names must also be usable: a TLS certificate and key that go
            // together.
            Ok(config) => match config
                .tls
                .as_ref()
                .map(|t| tls::server_config(&t.cert, &t.key, config.http2.enabled))
            {
                Some(Err(e)) => {
                    eprintln!("{}: tls: {e}", file.display());
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            },
            Err(problems) => {
                eprint!("{problems}");
                ExitCode::FAILURE
            }
        },
        Command::Apply {
            file,
            config,
            dry_run,
        } => store_command(&config, |store, config| async move {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let node = portico_config::yaml::load(&text)
                .map_err(|p| format!("{}: {}", file.display(), p.message))?;
            let doc = portico_config::yaml::to_json(&node);
            let changes = portico_admin::apply(&store, &config, &doc, dry_run)
                .await
                .map_err(|e| match e {
                    portico_admin::ApplyError::Invalid(problems) => problems
                        .iter()
                        .map(|p| format!("{}: {p}", file.display()))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    other => other.to_string(),
                })?;
            let mut out = String::new();
            let tense = if dry_run { "would " } else { "" };
            for change in &changes {
                out.push_str(&format!("{tense}{change}\n"));
            }
            out.push_str(&match (changes.len(), dry_run) {
                (0, _) => "no changes: the store matches the file\n".to_string(),
                (n, true) => format!("{n} changes to make (dry run: none made)\n"),
                (n, false) => format!("{n} changes made\n"),
            });
            Ok(out)
        }),
        Command::Purge {
            config,
            url,
            prefix,
            route,
        } => {
            let json = match (url, prefix, route) {
                (Some(u), None, None) => serde_json::json!({"url": u}),
                (None, Some(p), None) => serde_json::json!({"prefix": p}),
                (None, None, Some(r)) => serde_json::json!({"route": r}),
                _ => {
                    eprintln!("give one of --url, --prefix and --route");
                    return ExitCode::FAILURE;
                }
            };
            let Some(purge) = portico_cache::Purge::from_json(&json) else {
                eprintln!("a URL is http(s)://host/path or /path");
                return ExitCode::FAILURE;
            };
            store_command(&config, |store, _| async move {
                let seq = store
                    .add_purge(&purge.to_json())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "purge {seq} recorded: every node following the store applies it within a second\n"
                ))
            })
        }
        Command::Probe(args) => probe_command(args),
        Command::Export { config } => store_command(&config, |store, _| async move {
            portico_admin::export(&store)
                .await
                .map_err(|e| e.to_string())
        }),
        Command::Sign {
            url,
            access_key,
            method,
            headers,
            data,
            content_sha256,
        } => {
            let Ok(secret) = std::env::var("PORTICO_SECRET_KEY") else {
                eprintln!("set PORTICO_SECRET_KEY to the secret key");
                return ExitCode::FAILURE;
            };
            match sign_headers(
                &url,
                &access_key,
                &secret,
                &method,
                &headers,
                data.as_bytes(),
                content_sha256,
            ) {
                Ok(lines) => {
                    let mut out = std::io::stdout().lock();
                    match writeln!(out, "{lines}").and_then(|()| out.flush()) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(_) => ExitCode::FAILURE,
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Openapi {
            what: OpenapiCommand::Routes { config },
        } => match portico_config::expand_openapi(&config) {
            Ok(text) => print_out(&text),
            Err(problems) => {
                eprint!("{problems}");
                ExitCode::FAILURE
            }
        },
        Command::Codes { errors, contract } => {
            let text = if errors {
                portico_http::catalog::errors_markdown()
            } else if contract {
                portico_http::catalog::contract_markdown()
            } else {
                portico_http::catalog::codes_text()
            };
            print_out(&text)
        }
    }
}

/// Writes `text` to standard output.
fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The header lines that sign a request now.
fn sign_headers(
    url: &str,
    access: &str,
    secret: &str,
    method: &str,
    extra: &[String],
    body: &[u8],
    content_sha256: bool,
) -> Result<String, String> {
    use portico_policy::signature::{self, SignedRequest};
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("the URL is http://host[:port]/path or https://…")?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.as_bytes())),
        None => (target, None),
    };
    let mut fields: Vec<(String, String)> = vec![("host".into(), authority.to_string())];
    for h in extra {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("`{h}`: a header is `Name: value`"))?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let digest = signature::payload_hash(body);
    if content_sha256 {
        fields.push(("x-sdk-content-sha256".into(), digest.clone()));
    }
    let now = std::time::SystemTime::now();
    let date = signature::format_date(now);
    fields.push(("x-sdk-date".into(), date));
    let mut signed: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
    signed.sort();
    signed.dedup();
    let lookup = |name: &str| {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_bytes())
            .collect::<Vec<_>>()
    };
    let request = SignedRequest {
        method,
        path: path.as_bytes(),
        query,
        headers: &lookup,
        signed_headers: &signed.join(";"),
        payload_hash: &digest,
    };
    let (date, authorization) = signature::sign_request(access, secret.as_bytes(), &request, now);
    let mut out = format!("X-Sdk-Date: {date}\nAuthorization: {authorization}");
    if content_sha256 {
        out.push_str(&format!("\nX-Sdk-Content-Sha256: {digest}"));
    }
    Ok(out)
}

/// Runs `work` on the store the configuration file names and prints what it returns; an error
/// goes to standard error with exit status 1.
/// What `portico probe` was asked, as given.
#[derive(clap::Args)]
struct ProbeArgs {
    /// The API's base URL, `http://host[:port][/base]`.
    url: String,
    /// A path the API serves (for the rows that need one: OPTIONS, 405); repeatable.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Only these rows (status codes, comma-separated; 0 for the error envelope).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<u16>,
    /// `table`, `json` or `junit`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Also send the probes that carry request bodies (request smuggling hygiene).
    #[arg(long = "unsafe")]
    unsafe_probes: bool,
    /// The most requests sent in all.
    #[arg(long, default_value_t = 200)]
    max_requests: u32,
    /// The longest wait for one answer (`10s`, `500ms`).
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// A path that takes WebSocket handshakes (for 101).
    #[arg(long)]
    websocket: Option<String>,
    /// The root of an API with several versions (for 300).
    #[arg(long)]
    api_root: Option<String>,
    /// For https:// targets: a PEM file of the certificates to trust (else the system's).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The API's OpenAPI document (YAML or JSON): 405, 400, and with --unsafe 415 and 422,
    /// per operation.
    #[arg(long)]
    openapi: Option<PathBuf>,
    /// Speak HTTP/2: prior knowledge on http://, `h2` by ALPN on https://.
    #[arg(long)]
    http2: bool,
}

/// `portico probe`: exit 0 when nothing failed, 1 when a row failed, 2 when the target cannot
/// be probed at all (a bad URL or option, nothing listening), with one line saying why.
fn probe_command(args: ProbeArgs) -> ExitCode {
    use std::io::IsTerminal;
    let ProbeArgs {
        url,
        paths,
        rows,
        format,
        unsafe_probes,
        max_requests,
        timeout,
        websocket,
        api_root,
        ca,
        openapi,
        http2,
    } = args;
    let (format, timeout) = (format.as_str(), timeout.as_str());
    let unprobeable = |why: String| {
        eprintln!("portico probe: {why}");
        ExitCode::from(2)
    };
    let format = match format {
        "table" => portico_probe::Format::Table,
        "json" => portico_probe::Format::Json,
        "junit" => portico_probe::Format::Junit,
        other => return unprobeable(format!("--format {other}: table, json or junit")),
    };
    let timeout = match portico_config::parse_duration(timeout) {
        Ok(t) if !t.is_zero() => t,
        _ => return unprobeable(format!("--timeout {timeout}: a duration such as 10s")),
    };
    let base = match portico_probe::Target::parse(&url) {
        Ok(t) => t,
        Err(e) => return unprobeable(e.to_string()),
    };
    let openapi = match openapi.as_deref().map(portico_config::load_openapi) {
        None => None,
        Some(Ok(spec)) => Some(Arc::new(spec)),
        Some(Err(problems)) => return unprobeable(format!("--openapi: {}", problems.join("; "))),
    };
    let opts = portico_probe::Options {
        base,
        paths,
        rows,
        unsafe_probes,
        max_requests,
        timeout,
        websocket,
        api_root,
        ca,
        openapi,
        http2,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return unprobeable(format!("cannot start the runtime: {e}")),
    };
    // A progress bar on stderr when it is a terminal; nothing otherwise.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} rows {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut progress = |done: usize, all: usize| {
        if let Some(b) = &bar {
            b.set_length(all as u64);
            b.set_position(done as u64);
        }
    };
    let result = runtime.block_on(portico_probe::probe_with_progress(&opts, &mut progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match result {
        Ok(verdicts) => {
            let color = format == portico_probe::Format::Table
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let text = portico_probe::render(&verdicts, format, color);
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            ExitCode::from(portico_probe::exit_status(&verdicts))
        }
        Err(e) => unprobeable(e.to_string()),
    }
}

fn store_command<F, Fut>(path: &std::path::Path, work: F) -> ExitCode
where
    F: FnOnce(Backend, Config) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let config = match portico_config::load(path) {
        Ok(c) => c,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = Backend::open(&config.storage)
            .await
            .map_err(|e| e.to_string())?;
        work(store, config).await
    });
    match result {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    telemetry::log_to_stderr();
    let loaded = match &path {
        Some(p) => portico_config::load(p),
        None => portico_config::from_str(QUICKSTART, "built-in quickstart"),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    if path.is_none() {
        tracing::info!("no --config given: serving the built-in quickstart (echo handler)");
    }
    let runtime = match config.workers {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "portico stopped");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard one, as nginx's `worker_rlimit_nofile` and
/// Go's runtime do: every client connection takes a descriptor (two when it is proxied), and
/// the usual soft limit of 1024 would cap Portico far below `limits.max_connections`.
#[cfg(unix)]
fn raise_fd_limit(config: &Config) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is not a valid soft one everywhere; a million is plenty.
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|c| c < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the limit on open files");
        }
    }
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let per_connection = if config.upstreams.is_empty() { 1 } else { 2 };
    let max_connections = config.limits.max_connections;
    let needed = (max_connections as u64)
        .saturating_mul(per_connection)
        .saturating_add(64);
    if soft < needed {
        tracing::warn!(
            open_files = soft,
            max_connections,
            "the limit on open files is below what limits.max_connections may need (two per proxied connection); raise it (ulimit -n) or lower max_connections"
        );
    }
}

async fn run(config: Config, path: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    raise_fd_limit(&config);
    // Per-route response counts, kept across the gateways that reloads and store changes
    // build; the admin API reads and resets them.
    // The store: for the admin API, and for what routes keep in it (idempotency keys, jobs),
    // so that every node sharing it sees the same.
    let store = if config.admin.is_some()
        || config
            .routes
            .iter()
            .any(|r| r.idempotency.is_some() || r.async_jobs.is_some())
    {
        Some(Arc::new(Backend::open(&config.storage).await?))
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new(&config.metrics.buckets));
    let shared = Shared {
        stats: RouteStats::new(),
        failures: Arc::new(FailureLimiter::new()),
        tokens: Arc::new(MemoryTokens::default()),
        quotas: Quotas::new(Arc::new(MemoryLedger::default())),
        rate_limiters: rate_limiters(&config)?,
        keys: match &store {
            Some(s) => s.clone(),
            None => Arc::new(MemoryKeys::default()),
        },
        jobs: match &store {
            Some(s) => s.clone(),
            None => Arc::new(MemoryJobs::default()),
        },
        node: portico_store::new_id().into(),
        body_counts: Arc::default(),
        cache: Arc::new(open_cache(&config.cache)?),
        metrics: metrics.clone(),
        tracing: match &config.tracing {
            Some(t) => Some(telemetry::tracer(t, metrics)?),
            None => None,
        },
    };
    let gateway = build(&config, &shared).map_err(|e| e.to_string())?;
    let swap = Arc::new(Reloadable::new(gateway));
    telemetry::sample(&shared.metrics, &swap, &shared.cache, &shared.rate_limiters);
    tokio::spawn(telemetry::report_suppressed_lines());
    shared.metrics.reload(true);
    // Every handler is in place before Portico says it listens: a signal sent the moment
    // after must not meet the default action (which for SIGTERM and SIGHUP is to die).
    let stop = stop_signal()?;
    let tls = match &config.tls {
        Some(t) => Some((
            t.listen,
            Arc::new(Tls::load(&t.cert, &t.key, config.http2.enabled)?),
        )),
        None => None,
    };
    // The admin API first: a store or token problem stops Portico before anything listens.
    let admin = match (&config.admin, &store) {
        (Some(a), Some(store)) => Some(admin_api(a, &config, store, &swap, &shared).await?),
        _ => None,
    };
    if let Some(store) = store {
        // One node on SQLite: a job unfinished now was its previous run's.
        if matches!(*store, Backend::Sqlite(_)) {
            let now = now_ms();
            let failed = store
                .fail_stale_jobs(
                    i64::MAX,
                    now,
                    portico_http::ErrorCode::JobInterrupted.as_str(),
                )
                .await?;
            if failed > 0 {
                tracing::warn!(jobs = failed, "jobs left unfinished by the last run failed");
            }
        }
        tokio::spawn(keep_jobs(store.clone(), shared.node.clone()));
        tokio::spawn(purge_idempotency_keys(store));
    }
    let mut listeners = vec![Listener::plain(bind(config.listen).await?)];
    if let Some((addr, tls)) = &tls {
        listeners.push(Listener::tls(bind(*addr).await?, tls.clone()));
    }
    let egress = match &config.egress {
        Some(e) => {
            let listener = Listener::plain(bind(e.listen).await?);
            let address = listener.tcp.local_addr()?;
            tracing::info!(%address, "portico egress proxy listening");
            Some(listener)
        }
        None => None,
    };
    let scrape = match config.metrics.listen {
        Some(addr) => {
            let listener = Listener::plain(bind(addr).await?);
            let address = listener.tcp.local_addr()?;
            tracing::info!(%address, "portico metrics listening");
            Some(listener)
        }
        None => None,
    };
    for l in &listeners {
        let address = l.tcp.local_addr()?;
        match l.tls {
            None => tracing::info!(%address, "portico listening"),
            Some(_) => tracing::info!(%address, "portico listening (TLS)"),
        }
    }
    #[cfg(unix)]
    {
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let tls = tls.as_ref().map(|(_, t)| t.clone());
        let following = admin.as_ref().map(|(_, _, f)| f.clone());
        tokio::spawn(reload_on_sighup(
            hangup,
            path,
            swap.clone(),
            tls,
            config.clone(),
            following,
            shared.clone(),
        ));
    }
    #[cfg(not(unix))]
    let _ = path;
    // One stop signal for every listener set.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grace = config.shutdown_grace;
    let egress = async {
        match egress {
            Some(listener) => {
                let svc = Arc::new(EgressService::new(swap.clone()));
                portico_server::serve_all(vec![listener], svc, grace, stopped(stop_rx.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    let scrape = async {
        match scrape {
            Some(listener) => {
                let svc = Arc::new(portico_admin::MetricsEndpoint::new(
                    shared.metrics.clone(),
                    Arc::new(Gateway::conn_settings(&config)),
                ));
                portico_server::serve_all(vec![listener], svc, grace, stopped(stop_rx.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    let admin = async {
        match admin {
            Some((listener, svc, _)) => {
                portico_server::serve_all(vec![listener], svc, grace, stopped(stop_rx.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    let data = portico_server::serve_all(listeners, swap.clone(), grace, stopped(stop_rx.clone()));
    tokio::try_join!(data, admin, egress, scrape)?;
    tracing::info!("portico stopped");
    Ok(())
}

/// The data plane's model when a store is in use: the file's configuration (a reload replaces
/// it) and a way to ask for a rebuild with the store's documents.
#[derive(Clone)]
struct Following {
    base: Arc<ArcSwap<Config>>,
    rebuild: Arc<tokio::sync::Notify>,
    shared: Shared,
}

/// What every gateway built in this process shares, so that a reload or a change in the
/// store neither resets the request counts nor forgives authentication failures.
#[derive(Clone)]
struct Shared {
    stats: Arc<RouteStats>,
    failures: Arc<FailureLimiter>,
    /// Issued tokens: in this process, or in the store when one is open.
    tokens: Arc<dyn TokenStore>,
    /// The projects' prepaid request quotas: counted in this process, or in the store when
    /// one is open.
    quotas: Arc<Quotas>,
    /// The routes' rate-limit state.
    rate_limiters: Arc<RateLimiters>,
    /// Idempotency keys: in the store when one is open.
    keys: Arc<dyn KeyStore>,
    /// Jobs: in the store when one is open.
    jobs: Arc<dyn JobStore>,
    /// This process, as the jobs it runs name it.
    node: Arc<str>,
    /// Responses checked against OpenAPI operations, and transformed.
    body_counts: Arc<BodyCounts>,
    /// The response cache: one per process, kept across reloads.
    cache: Arc<portico_cache::Cache>,
    /// The Prometheus registry: one per process, kept across reloads.
    metrics: Arc<Metrics>,
    /// The tracer, when `tracing` is configured (changing it needs a restart).
    tracing: Option<portico_telemetry::Tracing>,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Every second: this node's running jobs stay its own, and jobs whose node's lease ran out
/// (it died) fail; every minute, expired results and forgotten jobs go.
async fn keep_jobs(store: Arc<Backend>, node: Arc<str>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let now = now_ms();
        if let Err(e) = store.renew_jobs(&node, now).await {
            tracing::warn!(error = %e, "renewing this node's jobs failed");
        }
        match store
            .fail_stale_jobs(now, now, portico_http::ErrorCode::JobInterrupted.as_str())
            .await
        {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(jobs = failed, "jobs whose node stopped failed"),
            Err(e) => tracing::warn!(error = %e, "checking for stopped jobs failed"),
        }
        if n.is_multiple_of(60)
            && let Err(e) = store.purge_jobs(now).await
        {
            tracing::warn!(error = %e, "purging jobs failed");
        }
        n += 1;
    }
}

/// Forgets expired idempotency keys (and their responses), once a minute.
async fn purge_idempotency_keys(store: Arc<Backend>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = store.purge_keys(now_ms()).await {
            tracing::warn!(error = %e, "purging idempotency keys failed");
        }
    }
}

/// The routes' rate limiters: each node's own, or shared through `cluster.redis`.
fn rate_limiters(config: &Config) -> Result<Arc<RateLimiters>, Box<dyn std::error::Error>> {
    let clock = Arc::new(MonotonicClock::default());
    Ok(match &config.cluster {
        None => RateLimiters::new(clock),
        Some(c) => {
            let redis = portico_store::RedisLimits::new(&c.redis, c.budget)?;
            RateLimiters::shared(clock, Arc::new(redis))
        }
    })
}

/// Quotas counted in the store, so that every node on it takes from one count.
struct StoreLedger(Arc<Backend>);

impl QuotaLedger for StoreLedger {
    fn reserve<'a>(
        &'a self,
        project: &'a str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> QuotaFuture<'a> {
        Box::pin(async move {
            self.0
                .reserve_quota(project, period_start, want, limit)
                .await
        })
    }
}

/// Tokens kept in the store, so that any node can check them, behind a cache of one second
/// (a token revoked through another node's admin API is refused within that).
struct StoreTokens {
    store: Arc<Backend>,
    cache: std::sync::Mutex<std::collections::HashMap<String, (StoredGrant, std::time::Instant)>>,
}

/// How long a token read from the store is believed without asking again.
const TOKEN_CACHE: Duration = Duration::from_secs(1);

impl StoreTokens {
    fn cache(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, (StoredGrant, std::time::Instant)>,
    > {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets what the cache holds of a token (it was revoked here).
    fn evict(&self, digest: &str) {
        self.cache().remove(digest);
    }
}

impl TokenStore for StoreTokens {
    fn put<'a>(
        &'a self,
        digest: &'a str,
        grant: &'a serde_json::Value,
        expires_ms: i64,
    ) -> TokenFuture<'a, ()> {
        Box::pin(async move { self.store.put_token(digest, grant, expires_ms).await })
    }

    fn get<'a>(&'a self, digest: &'a str) -> TokenFuture<'a, Option<StoredGrant>> {
        Box::pin(async move {
            let now = std::time::Instant::now();
            if let Some((grant, at)) = self.cache().get(digest)
                && now.duration_since(*at) < TOKEN_CACHE
            {
                return Ok(Some(grant.clone()));
            }
            let found = self.store.get_token(digest).await?.map(|t| StoredGrant {
                body: t.body,
                expires_ms: t.expires_ms,
                revoked: t.revoked_ms.is_some(),
            });
            let mut cache = self.cache();
            if cache.len() >= 100_000 {
                cache.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_CACHE);
            }
            if let Some(g) = &found {
                cache.insert(digest.to_string(), (g.clone(), now));
            }
            Ok(found)
        })
    }
}

/// How often the data plane looks at the store's revision: a change made through the admin
/// API (on this node or another on the same PostgreSQL) is serving within a second.
const STORE_POLL: Duration = Duration::from_millis(250);

/// The file's configuration with the store's upstreams, routes and APIs, as a gateway.
async fn combined(store: &Backend, base: &Config, shared: &Shared) -> Result<Gateway, String> {
    let docs = portico_admin::model_documents(store)
        .await
        .map_err(|e| e.to_string())?;
    let mut config = portico_config::with_documents(base, &docs).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        text.join("; ")
    })?;
    portico_admin::add_directory(store, &mut config.projects)
        .await
        .map_err(|e| e.to_string())?;
    portico_admin::add_plans(store, &mut config.plans)
        .await
        .map_err(|e| e.to_string())?;
    build(&config, shared).map_err(|e| e.to_string())
}

/// Keeps the data plane on the store's upstreams and routes: at each change of the store's
/// revision (or when a reload asks), the gateway is rebuilt and swapped in; one that cannot be
/// built is logged and the running one goes on serving.
async fn follow_store(
    store: Arc<Backend>,
    following: Following,
    swap: Arc<Reloadable<Gateway>>,
    mut seen: u64,
) {
    let mut tick = tokio::time::interval(STORE_POLL);
    let mut purged = match store.last_purge().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store's last cache purge");
            0
        }
    };
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            () = following.rebuild.notified() => true,
        };
        purged = follow_purges(&store, &following.shared.cache, purged).await;
        let revision = match store.revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's revision");
                continue;
            }
        };
        if revision == seen && !forced {
            continue;
        }
        match combined(&store, &following.base.load(), &following.shared).await {
            Ok(gateway) => {
                swap.replace(gateway);
                tracing::info!(revision, "data plane follows the store");
            }
            Err(e) => {
                tracing::error!(error = %e, "the store's documents do not build; the running configuration keeps serving")
            }
        }
        seen = revision;
    }
}

/// Applies the cache purges recorded in the store after `seen`; returns the last one applied.
async fn follow_purges(store: &Backend, cache: &portico_cache::Cache, mut seen: u64) -> u64 {
    loop {
        let purges = match store.purges_after(seen).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's cache purges");
                return seen;
            }
        };
        let full = purges.len() as i64 == portico_store::PURGES_PER_READ;
        for (seq, json) in purges {
            match portico_cache::Purge::from_json(&json) {
                Some(p) => {
                    let targets = cache.apply(&p);
                    tracing::info!(seq, targets, "cache purge applied");
                }
                None => tracing::warn!(seq, "a cache purge in the store that is not one"),
            }
            seen = seq;
        }
        if !full {
            return seen;
        }
    }
}

/// How long the store keeps a cache purge: every node following it has long applied it.
const PURGE_RETENTION: Duration = Duration::from_secs(3600);

/// Forgets the cache purges older than [`PURGE_RETENTION`].
async fn forget_purges(store: &Backend) -> Result<u64, portico_store::StoreError> {
    let retention = i64::try_from(PURGE_RETENTION.as_millis()).unwrap_or(i64::MAX);
    store
        .forget_purges(now_ms().saturating_sub(retention))
        .await
}

/// The admin API: its store (opened and migrated now), its token, its listener; and the data
/// plane put on the store's documents before anything listens.
async fn admin_api(
    a: &portico_config::AdminListener,
    config: &Config,
    store: &Arc<Backend>,
    swap: &Arc<Reloadable<Gateway>>,
    shared: &Shared,
) -> Result<(Listener, Arc<Admin<Arc<Backend>>>, Following), Box<dyn std::error::Error>> {
    use sha2::Digest;
    // The environment's token wins over the file's, so that it can stay out of files.
    let token = match std::env::var("PORTICO_ADMIN_TOKEN") {
        Ok(t) if t.len() >= 16 => Some(sha2::Sha256::digest(t.as_bytes()).into()),
        Ok(_) => return Err("PORTICO_ADMIN_TOKEN must be at least 16 characters".into()),
        Err(_) => a.token_sha256,
    };
    let Some(token) = token else {
        return Err("the admin API needs a token: admin.token or PORTICO_ADMIN_TOKEN".into());
    };
    let store = store.clone();
    // With a store, tokens live in it: every node can check them.
    let store_tokens = Arc::new(StoreTokens {
        store: store.clone(),
        cache: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let shared = &Shared {
        tokens: store_tokens.clone(),
        quotas: Quotas::new(Arc::new(StoreLedger(store.clone()))),
        ..shared.clone()
    };
    let following = Following {
        base: Arc::new(ArcSwap::from_pointee(config.clone())),
        rebuild: Arc::new(tokio::sync::Notify::new()),
        shared: shared.clone(),
    };
    let revision = store.revision().await?;
    swap.replace(combined(&store, config, shared).await?);
    tokio::spawn(follow_store(
        store.clone(),
        following.clone(),
        swap.clone(),
        revision,
    ));
    let settings = Arc::new(Gateway::conn_settings(config));
    let listener = Listener::plain(bind(a.listen).await?);
    let address = listener.tcp.local_addr()?;
    tracing::info!(%address, "portico admin API listening");
    let purging_store = store.clone();
    let admin = Arc::new(
        Admin::new(store, token, settings)
            .with_model(following.base.clone())
            .with_stats(shared.stats.clone())
            .with_prometheus(shared.metrics.clone())
            .with_overview(telemetry::overview(swap.clone(), shared.metrics.clone()))
            .with_token_revocation(Arc::new(move |digest: &str| store_tokens.evict(digest)))
            .with_limit_reset(limit_reset(shared.rate_limiters.clone()))
            .with_route_cache_counts({
                let cache = shared.cache.clone();
                Arc::new(move |route: &str| {
                    cache.counts_of(route).map(|c| {
                        c.snapshot()
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                })
            })
            .with_cache_purge({
                let cache = shared.cache.clone();
                Arc::new(move |purge: &portico_cache::Purge| {
                    let n = cache.apply(purge);
                    tracing::info!(?purge, targets = n, "cache purged");
                })
            })
            .with_metrics({
                let limiters = shared.rate_limiters.clone();
                let bodies = shared.body_counts.clone();
                let cache = shared.cache.clone();
                Arc::new(move || {
                    let mut m =
                        serde_json::json!({"rate_limit_store_failures": limiters.store_failures()});
                    if let Some(m) = m.as_object_mut() {
                        if let serde_json::Value::Object(b) = bodies.snapshot() {
                            m.extend(b);
                        }
                        m.extend(cache_metrics(&cache));
                    }
                    m
                })
            }),
    );
    // Tombstones are forgotten once their retention is over, checked ten times per retention
    // (at least every second, at most every hour).
    let retention = a.tombstone_retention;
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let purging = admin.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = purging.purge_tombstones(retention).await {
                tracing::warn!(error = %e, "purging tombstones failed");
            }
            if let Err(e) = forget_purges(&purging_store).await {
                tracing::warn!(error = %e, "forgetting old cache purges failed");
            }
        }
    });
    Ok((listener, admin, following))
}

/// The response cache the configuration asks for: memory, and a directory when `cache.disk`
/// names one (what an earlier process left there is served again).
fn open_cache(
    storage: &portico_config::CacheStorage,
) -> Result<portico_cache::Cache, Box<dyn std::error::Error>> {
    let clock = Arc::new(portico_cache::SystemClock);
    Ok(match &storage.disk {
        None => portico_cache::Cache::new(storage.memory, clock),
        Some(d) => portico_cache::Cache::with_disk(storage.memory, clock, &d.path, d.size)
            .map_err(|e| format!("cache.disk: {}: {e}", d.path.display()))?,
    })
}

/// The cache's counters for `GET /admin/v1/metrics`: its size, and each route's hits,
/// misses, stale responses and bytes served, as flat integer members
/// (`cache_hits{route=NAME}` style names would need a nested object; the admin API's metrics
/// are one level of integers, so each is `cache.ROUTE.COUNTER`).
fn cache_metrics(cache: &portico_cache::Cache) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("cache_bytes".into(), cache.weighted_size().into());
    m.insert("cache_entries".into(), cache.entry_count().into());
    m.insert("cache_disk_bytes".into(), cache.disk_bytes().into());
    m.insert(
        "cache_disk_write_failures".into(),
        cache.disk_write_failures().into(),
    );
    for (route, c) in cache.all_counts() {
        for (name, v) in c.snapshot() {
            m.insert(format!("cache.{route}.{name}"), v.into());
        }
    }
    m
}

/// What `POST …/limits/reset` does: forgets the route's or the consumer's rate-limit state,
/// here and in Redis (a failure there is logged; the 205 says this node forgot).
fn limit_reset(limiters: Arc<RateLimiters>) -> portico_admin::OnLimitReset {
    Arc::new(move |reset| {
        let limiters = limiters.clone();
        Box::pin(async move {
            let done = match &reset {
                LimitReset::Route(route) => limiters.reset_route(route).await,
                LimitReset::Consumer {
                    project_id,
                    consumer,
                } => limiters.reset_consumer(project_id, consumer).await,
            };
            if let Err(error) = done {
                tracing::warn!(?reset, %error, "the shared rate-limit store did not forget");
            }
        })
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// The gateway for a configuration, with its access log opened.
fn build(
    config: &Config,
    shared: &Shared,
) -> Result<Gateway, Box<dyn std::error::Error + Send + Sync>> {
    let log = AccessLogSink::open(&config.access_log)?;
    Ok(Gateway::new(config, log)?
        .with_stats(&shared.stats)
        .with_failure_limiter(shared.failures.clone())
        .with_tokens(shared.tokens.clone())
        .with_quotas(shared.quotas.clone())
        .with_idempotency_keys(shared.keys.clone())
        .with_jobs(Arc::new(Jobs::new(
            shared.jobs.clone(),
            shared.node.clone(),
            config.limits.job_results_bytes,
        )))
        .with_rate_limiters(shared.rate_limiters.clone())
        .with_body_counts(shared.body_counts.clone())
        .with_cache(shared.cache.clone()))
    .map(|gw| {
        let gw = match &shared.tracing {
            Some(t) => gw.with_tracing(t.clone()),
            None => gw,
        };
        if config.metrics.enabled {
            gw.with_metrics(shared.metrics.clone())
        } else {
            gw
        }
    })
}

/// Settings a reload cannot change: they belong to the listener and the runtime.
fn needs_restart(running: &Config, next: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if running.listen != next.listen {
        keys.push("listen");
    }
    if running.workers != next.workers {
        keys.push("workers");
    }
    if running.limits.max_connections != next.limits.max_connections {
        keys.push("limits.max_connections");
    }
    if running.shutdown_grace != next.shutdown_grace {
        keys.push("shutdown_grace");
    }
    if running.tls.as_ref().map(|t| t.listen) != next.tls.as_ref().map(|t| t.listen) {
        keys.push("tls.listen");
    }
    if running.egress.as_ref().map(|e| e.listen) != next.egress.as_ref().map(|e| e.listen) {
        keys.push("egress.listen");
    }
    if running.cluster != next.cluster {
        keys.push("cluster");
    }
    if running.cache != next.cache {
        keys.push("cache");
    }
    if running.metrics.listen != next.metrics.listen {
        keys.push("metrics.listen");
    }
    if running.metrics.buckets != next.metrics.buckets {
        keys.push("metrics.buckets");
    }
    if running.tracing != next.tracing {
        keys.push("tracing");
    }
    keys
}

/// On SIGHUP, reads the configuration file again and, if it is valid and builds, makes it the
/// one every new request gets; requests in flight finish with the old one. A file with
/// problems is refused with each problem logged, and the old configuration keeps serving.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    swap: Arc<Reloadable<Gateway>>,
    tls: Option<Arc<Tls>>,
    mut running: Config,
    following: Option<Following>,
    shared: Shared,
) {
    while hangup.recv().await.is_some() {
        let Some(path) = path.clone() else {
            tracing::warn!("SIGHUP: serving the built-in quickstart, there is no file to reload");
            continue;
        };
        let tls = tls.clone();
        let building = shared.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let config = portico_config::load(&path).map_err(Reload::Invalid)?;
            let gateway = build(&config, &building).map_err(Reload::Unusable)?;
            // A new certificate for the handshakes from now on; sessions already open keep
            // theirs.
            if let (Some(tls), Some(files)) = (&tls, &config.tls) {
                tls.reload(&files.cert, &files.key, config.http2.enabled)
                    .map_err(|e| Reload::Unusable(Box::new(e)))?;
            }
            Ok::<_, Reload>((config, gateway))
        })
        .await;
        match loaded {
            Ok(Ok((next, gateway))) => {
                count_reload(&shared, true);
                for key in needs_restart(&running, &next) {
                    tracing::warn!(
                        key,
                        "changed in the file; it applies after a restart, not a reload"
                    );
                }
                match &following {
                    // The store's documents join the new file's model before it serves.
                    Some(f) => {
                        f.base.store(Arc::new(next.clone()));
                        f.rebuild.notify_one();
                    }
                    None => swap.replace(gateway),
                }
                running = next;
                tracing::info!("configuration reloaded");
            }
            Ok(Err(Reload::Invalid(problems))) => {
                count_reload(&shared, false);
                for problem in problems.to_string().lines() {
                    tracing::error!(problem, "configuration not reloaded");
                }
                tracing::error!("the file has problems; the previous configuration keeps serving");
            }
            Ok(Err(Reload::Unusable(e))) => {
                count_reload(&shared, false);
                tracing::error!(error = %e, "configuration not reloaded; the previous one keeps serving");
            }
            Err(e) => {
                count_reload(&shared, false);
                tracing::error!(error = %e, "configuration reload failed");
            }
        }
    }
}

/// Counts a reload in the metrics.
fn count_reload(shared: &Shared, ok: bool) {
    shared.metrics.reload(ok);
}

/// Why a reload was refused.
#[cfg(unix)]
enum Reload {
    /// The file has problems.
    Invalid(portico_config::Problems),
    /// It is valid but cannot be put to use (a log file that cannot be opened, a static root
    /// gone).
    Unusable(Box<dyn std::error::Error + Send + Sync>),
}

/// A future that resolves on SIGINT or SIGTERM, with both handlers installed before it
/// returns.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
