//! The `staffbot` binary: parse the command line, load the configuration, set up logging (always
//! to stderr), run the command, and print any error as one line.

use std::process::ExitCode;

use clap::Parser;
use staffbot::cli::{self, Cli};
use staffbot::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

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
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
