//! The `wardline` command line: `serve`, `demo`, `migrate`, `token`, `user`, `audit`, `keys`, `hl7`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat, Secret};
use crate::startup::Application;
use crate::store::Store;
use crate::{demo, telemetry};

mod admin;
mod hl7;
use admin::{AuditCommand, KeysCommand, TokenCommand, UserCommand};

/// Wardline: care-team messaging for hospitals.
#[derive(Parser, Debug)]
#[command(name = "wardline", version, about)]
pub struct Cli {
    /// TOML configuration file (also `WARDLINE_CONFIG`).
    #[arg(long, global = true, env = "WARDLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP and MLLP listeners.
    Serve(ServeArgs),
    /// Run with synthetic demo data in a throw-away (or given) data directory.
    Demo(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users and service accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The HL7 inbox: list errored messages, replay them after a mapping fix.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
}

#[derive(Args, Debug, Default, Serialize)]
pub(crate) struct DbArgs {
    /// Database URL (`sqlite://PATH` or `postgres://...`); overrides `DATABASE_URL`.
    #[arg(long = "database")]
    #[serde(skip_serializing_if = "Option::is_none", rename = "database_url")]
    database: Option<String>,
    /// Data directory (holds the default SQLite database).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Default, Serialize)]
struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    db: DbArgs,
    /// HTTP listen address (`WARDLINE_HTTP_ADDR`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_addr: Option<std::net::SocketAddr>,
    /// MLLP listen address (`WARDLINE_MLLP_ADDR`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mllp_addr: Option<std::net::SocketAddr>,
    /// Log format: json or pretty.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
}

impl clap::ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Json, LogFormat::Pretty]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }))
    }
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wardline: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wardline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn load(cli_config: Option<&PathBuf>, overrides: &impl Serialize) -> anyhow::Result<Config> {
    Config::load(
        cli_config.map(PathBuf::as_path),
        Figment::from(Serialized::defaults(overrides)),
    )
    .context("reading configuration")
}

pub(crate) async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&cfg.database_url(), 2).await?;
    store.migrate().await?;
    Ok(store)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = load(cli.config.as_ref(), &args)?;
            telemetry::init_logging(cfg.log_format, &cfg.log_level);
            tracing::info!(config = ?cfg, "starting");
            let app = Application::build(cfg).await?;
            stop_on_signal(app.shutdown_token());
            app.run_until_stopped().await
        }
        Command::Demo(args) => run_demo(cli.config.as_ref(), args).await,
        Command::Migrate(db) => {
            let cfg = load(cli.config.as_ref(), &db)?;
            open_store(&cfg).await?;
            println!(
                "migrations applied to {}",
                crate::config::redact_url(&cfg.database_url())
            );
            Ok(())
        }
        Command::Token(cmd) => admin::token(cli.config.as_ref(), cmd).await,
        Command::User(cmd) => admin::user(cli.config.as_ref(), cmd).await,
        Command::Audit(cmd) => admin::audit(cli.config.as_ref(), cmd).await,
        Command::Keys(cmd) => admin::keys(cli.config.as_ref(), cmd).await,
        Command::Hl7(cmd) => hl7::run(cli.config.as_ref(), cmd).await,
    }
}

async fn run_demo(config: Option<&PathBuf>, mut args: ServeArgs) -> anyhow::Result<()> {
    // A throw-away directory unless one was given; kept alive until the demo stops.
    let temp = match &args.db.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("wardline-demo-").tempdir()?),
    };
    if let Some(t) = &temp {
        args.db.data_dir = Some(t.path().to_path_buf());
    }
    let mut cfg = load(config, &args)?;
    if args.db.database.is_none() {
        // The demo never touches a configured production database unless asked to explicitly.
        cfg.database_url = None;
    }
    if args.log_format.is_none() {
        cfg.log_format = LogFormat::Pretty;
        cfg.log_level = "warn".into();
    }
    telemetry::init_logging(cfg.log_format, &cfg.log_level);
    demo::configure(&mut cfg)?;
    // The mock EHR sits ten ports above Wardline (8090 by default).
    let ehr_port = match cfg.http_addr.port() {
        0 => 0,
        p => p.saturating_add(10),
    };
    let ehr_addr = std::net::SocketAddr::new(cfg.http_addr.ip(), ehr_port);
    let ehr = demo::ehr::start(&mut cfg, ehr_addr).await?;
    let data_dir = cfg.data_dir.clone();
    let db = Secret::new(cfg.database_url());
    let app = Application::build(cfg).await?;
    let logins = demo::load(app.store(), app.chat(), chrono::Utc::now().timestamp_millis()).await?;
    demo::seed_roster(app.oncall(), app.store(), chrono::Utc::now()).await?;
    let url = format!("http://{}", app.local_addr());
    demo::ehr::seed(&ehr, &url)?;
    let mllp = app.mllp_addr();
    println!("Wardline demo running at {url}");
    println!(
        "  Launch from the EHR: {}/   (mock EHR: open a chart and Wardline launches inside it; docs/smart.md)",
        ehr.base()
    );
    if let Some(mllp) = mllp {
        println!("  HL7 v2 MLLP: {mllp}   (send fixtures/hl7/*.hl7; see docs/hl7.md)");
    }
    println!("  data: {} (database {db})", data_dir.display());
    println!("  API:  {url}/api/v1/openapi.json   health: {url}/readyz");
    println!("  FHIR: {url}/fhir/metadata   (R4; see docs/fhir.md)");
    println!("  On call: {url}/api/v1/oncall/cardiology   (see docs/oncall.md)");
    println!("\nDemo tokens (use as 'Authorization: Bearer <token>'):");
    for l in &logins {
        println!(
            "  {:<14} {:<22} {:<12} {}",
            l.username, l.display_name, l.roles, l.token
        );
    }
    if let Some(first) = logins.iter().find(|l| l.username == "dr.osei") {
        println!(
            "\nTry:\n  curl -H 'Authorization: Bearer {}' {url}/api/v1/rooms",
            first.token
        );
    }
    println!("\nPress Ctrl-C to stop.");
    stop_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}

fn stop_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}
