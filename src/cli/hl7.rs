//! `wardline hl7 errors|replay`: the interface analyst's view of the inbox. Both work directly on
//! the database (the server may be running: SQLite waits for its writer, PostgreSQL nodes are
//! told of replayed changes through notifications).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::{DbArgs, load, open_store};
use crate::clock::SystemClock;
use crate::hl7::inbox::{self, Entry};
use crate::startup::Core;

#[derive(Subcommand, Debug)]
pub enum Hl7Command {
    /// List stored messages whose content could not be applied (metadata only, no patient data).
    Errors {
        /// Most entries to list.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// List applied messages with mapping warnings instead (unknown practitioners, units
        /// without a team).
        #[arg(long)]
        warnings: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-apply stored messages after a mapping fix: the given ids, or every errored one.
    Replay {
        /// Inbox ids (from `wardline hl7 errors`); repeat for several.
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Replay every errored message, oldest first.
        #[arg(long, conflicts_with = "ids")]
        all_errors: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn print(entries: &[Entry], json: bool) {
    if json {
        for e in entries {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        }
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<10}  {:<14}  {:<8}  {:<7}  {:<6}  {:<8}  reason",
        "id", "received", "sender", "control id", "type", "outcome", "code", "where"
    );
    for e in entries {
        println!(
            "{:<36}  {:<20}  {:<10}  {:<14}  {:<8}  {:<7}  {:<6}  {:<8}  {}",
            e.id,
            e.received_at.format("%Y-%m-%d %H:%M:%S"),
            e.sender,
            e.control_id,
            e.message_type,
            e.outcome,
            e.error_code.as_deref().unwrap_or("-"),
            e.error_location.as_deref().unwrap_or("-"),
            e.error_text.as_deref().unwrap_or(""),
        );
        for w in &e.warnings {
            println!("{:<38}warning: {w}", "");
        }
    }
}

/// Runs an `hl7` subcommand.
pub async fn run(config: Option<&PathBuf>, cmd: Hl7Command) -> anyhow::Result<()> {
    match cmd {
        Hl7Command::Errors {
            limit,
            json,
            warnings,
            db,
        } => {
            let cfg = load(config, &db)?;
            let store = open_store(&cfg).await?;
            let entries = if warnings {
                inbox::warnings(&store, limit).await?
            } else {
                inbox::errors(&store, limit).await?
            };
            print(&entries, json);
            if !json {
                let what = if warnings { "with warnings" } else { "errored" };
                println!("{} {what} message(s)", entries.len());
            }
            Ok(())
        }
        Hl7Command::Replay { ids, all_errors, db } => {
            if ids.is_empty() && !all_errors {
                anyhow::bail!("name messages with --id, or replay all errored ones with --all-errors");
            }
            let cfg = load(config, &db)?;
            let core = Core::build(&cfg, Arc::new(SystemClock)).await?;
            let entries = core.hl7.replay(&ids).await?;
            print(&entries, false);
            let still = entries.iter().filter(|e| e.outcome == "error").count();
            println!("{} replayed, {} still in error", entries.len(), still);
            core.shutdown.cancel();
            core.store.close().await;
            Ok(())
        }
    }
}
