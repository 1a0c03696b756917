//! The `staffbot` binary: parse the command line, load the configuration, set up logging (always
//! to stderr), run the command, and print any error as one line.

use std::process::ExitCode;

use clap::Parser;
use staffbot::cli::{self, Cli};
use staffbot::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    // The migrator announces every start at INFO, and PostgreSQL's notices ("relation already
    // exists, skipping") arrive at INFO too; keep both quiet unless asked for by name. sqlx's
    // connect-option parser warns about a URL parameter it does not know *with its value*
    // (`?sslpassword=…`) and about malformed `.pgpass` lines (passwords): never shown.
    let mut directives = config.log.level.clone();
    for (noisy, level) in [
        ("sea_orm_migration", "warn"),
        ("sqlx::postgres::notice", "warn"),
        ("sqlx_postgres::options", "off"),
    ] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}={level}"));
        }
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // Every line is masked: no secret staffbot knows is written, whatever text it quotes.
        .with_writer(staffbot::secrets::MaskedStderr);
    match config.log.format {
        LogFormat::Json => builder.json().finish().with(CredentialCap).init(),
        LogFormat::Text => builder.finish().with(CredentialCap).init(),
    }
}

/// Protocol crates whose debug and trace output carries credentials: async-imap (and
/// imap-proto) trace every line they write, `LOGIN "user" "password"` included; lettre's
/// connection logs `AUTH PLAIN <base64 of user and password>` at debug.
const CREDENTIAL_TARGETS: &[&str] = &["async_imap", "imap_proto", "lettre"];

/// Whether `target` is one of [`CREDENTIAL_TARGETS`] or a module of one.
fn carries_credentials(target: &str) -> bool {
    CREDENTIAL_TARGETS.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Caps [`CREDENTIAL_TARGETS`] at INFO whatever `RUST_LOG` says (`async_imap=trace` included):
/// a layer whose "no" disables an event for every layer, checked on each event (their `log`
/// records arrive through one shared callsite per level, so no answer is cached for them).
struct CredentialCap;

impl CredentialCap {
    fn allows(meta: &tracing::Metadata<'_>) -> bool {
        !(carries_credentials(meta.target()) && *meta.level() > tracing::Level::INFO)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CredentialCap {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if !Self::allows(meta) {
            tracing::subscriber::Interest::never()
        } else if meta.target() == "log" || carries_credentials(meta.target()) {
            // `log` records share callsites: each is checked by its own target.
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        Self::allows(meta)
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        Self::allows(event.metadata())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `simulate` runs the engine thousands of times: its log says what goes wrong, not what
    // happens (RUST_LOG still wins).
    if matches!(cli.command, cli::Command::Simulate(_)) && std::env::var_os("RUST_LOG").is_none() {
        config.log.level = "warn".into();
    }
    // `demo`'s banner (the page's URL) stays on screen: the daemon's log says what goes wrong,
    // unless asked for (RUST_LOG, or a `log.level` other than the default).
    if matches!(cli.command, cli::Command::Demo(_))
        && std::env::var_os("RUST_LOG").is_none()
        && config.log.level == "info"
    {
        config.log.level = "warn".into();
    }
    // Before anything is logged: every secret in the configuration is masked from here on.
    staffbot::secrets::register_config(&config);
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
