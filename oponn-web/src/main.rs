//! The `oponn` binary: reads configuration and runs the service. All the
//! wiring lives in the `oponn_web` library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "simulate")]
use oponn_simulate::SimulateArgs;
use oponn_web::{App, Config, Environment};
use tracing_subscriber::EnvFilter;

/// jemalloc, with its background thread purging freed pages (after about
/// ten seconds unused): glibc's allocator kept some 50 MiB of a departed
/// crowd of 2,000 watchers resident for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Oponn: real-time voting.
///
/// Configuration comes from the environment (and `.env`): OPONN_ENV,
/// OPONN_BIND, DATABASE_URL, REDIS_URL, OPONN_KMS_KEY_ID, AWS_REGION,
/// OPONN_KMS_ENDPOINT, OPONN_SECRET_KEY, OPONN_SKIP_CSRF, OPONN_DATA_DIR, and
/// for sign-in OPONN_GITHUB_* and OPONN_GOOGLE_* (CLIENT_ID, CLIENT_SECRET,
/// REDIRECT_URL). The README lists them all.
#[derive(Debug, Parser)]
#[command(name = "oponn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web pages, live results and API (the default). Outside
    /// production, pending database migrations are applied first.
    Serve {
        /// The address to listen on, such as `127.0.0.1:8000` or
        /// `0.0.0.0:80` (default: `OPONN_BIND`, else `127.0.0.1:8000`).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Load a running Oponn like many browsers at once: voters, watchers,
    /// latencies, and a check of the final tally.
    ///
    /// Exits 1 when the server's tally differs from the votes it
    /// acknowledged, 2 when the run cannot start.
    #[cfg(feature = "simulate")]
    Simulate(SimulateArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { bind } => match configure() {
            Ok(mut config) => {
                if let Some(bind) = bind {
                    config.bind = bind;
                }
                serve(config).await
            }
            Err(code) => code,
        },
        Command::Migrate => match configure() {
            Ok(config) => migrate(config).await,
            Err(code) => code,
        },
        // The load tool talks to a server over HTTP: it needs none of the
        // server's configuration.
        #[cfg(feature = "simulate")]
        Command::Simulate(args) => run_simulation(args).await,
    }
}

/// Reads the configuration and sets up logging; on failure, the exit code.
fn configure() -> Result<Config, ExitCode> {
    let config = Config::from_env().map_err(|error| {
        eprintln!("oponn: configuration: {error}");
        ExitCode::from(2)
    })?;
    init_logging(config.environment);
    Ok(config)
}

/// Exit 1 when the tally check fails, 2 when the run cannot start.
#[cfg(feature = "simulate")]
async fn run_simulation(args: SimulateArgs) -> ExitCode {
    match oponn_simulate::run(args).await {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("oponn simulate: {error}");
            ExitCode::from(2)
        }
    }
}

async fn migrate(config: Config) -> ExitCode {
    match oponn_web::migrate(&config).await {
        Ok((applied, database)) if applied.is_empty() => {
            println!("{database}: up to date");
            ExitCode::SUCCESS
        }
        Ok((applied, database)) => {
            println!("{database}: applied {}", applied.join(", "));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("oponn: migrate: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let app = match App::build(&config).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("oponn: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let wiring = app.wiring();
    let address = app
        .local_addr()
        .map_or_else(|_| config.bind.clone(), |address| address.to_string());
    tracing::info!(
        environment = %config.environment,
        storage = %wiring.storage,
        coordination = %wiring.coordination,
        keys = %wiring.keys,
        "oponn {} listening on http://{address}",
        env!("CARGO_PKG_VERSION"),
    );
    tracing::info!("API docs at http://{address}/api/docs");
    if matches!(
        config.environment,
        Environment::Development | Environment::Testing
    ) {
        tracing::info!("mock sign-in (development only) at http://{address}/login");
    }
    if config.environment.is_strict() && config.public_url.is_none() {
        tracing::warn!(
            "OPONN_PUBLIC_URL is not set: share links, QR codes and link previews use each \
             request's Host, which a proxy may rewrite to an internal address"
        );
    }
    match app.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oponn: server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(environment: Environment) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: piped or redirected logs
    // carry no escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if environment == Environment::Production {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
