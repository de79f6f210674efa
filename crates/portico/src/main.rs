//! The `portico` command: `serve`, `check-config`, `codes`.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use portico_config::Config;
use portico_gateway::{AccessLogSink, Gateway};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { file } => match portico_config::load(&file) {
            Ok(_) => ExitCode::SUCCESS,
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
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    match runtime.block_on(run(config)) {
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

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    raise_fd_limit(&config);
    let log = AccessLogSink::open(&config.access_log)?;
    let gateway = Gateway::new(&config, log)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "portico listening");
    let settings = Gateway::conn_settings(&config);
    portico_server::serve(
        listener,
        Arc::new(gateway),
        settings,
        config.shutdown_grace,
        stop_signal(),
    )
    .await?;
    tracing::info!("portico stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
