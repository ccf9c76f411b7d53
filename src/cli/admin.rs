//! Administrative subcommands that work directly on the database: tokens, users, the audit
//! trail. Each change they make is audited with the source `cli`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{DbArgs, load, open_store};
use crate::audit::{Event, chain};
use crate::auth::{self, Role};
use crate::crypto::datakeys::DataKeys;
use crate::store::audit;
use crate::store::users::{self, UserRecord};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a token for a user; prints it once.
    Create {
        /// Login name of the user or service account.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime in days (default: until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Limit the token to some of the user's roles and SMART scopes (`system/Patient.rs`),
        /// comma-separated (default: all the roles, and all the FHIR access they allow).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user or service account.
    Create {
        /// Unique login name.
        #[arg(long)]
        username: String,
        /// Display name.
        #[arg(long)]
        display_name: String,
        /// Comma-separated roles: clinician, scheduler, integration, auditor, admin.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// A service account rather than a person.
        #[arg(long)]
        service: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 and name the first broken entry if it was tampered with.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write the whole trail as NDJSON (one entry per line, oldest first).
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// `ndjson` (Wardline entries) or `fhir` (FHIR R4 AuditEvent, IHE BALP).
        #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "fhir"])]
        format: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-wrap every data key under the active key-encryption key. Run after adding the new KEK
    /// (and making it active) on every node; remove the old KEK only afterwards.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Records `event` (source `cli`) in the transaction that made the change, then commits both.
async fn commit_with_audit(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    event: Event,
) -> anyhow::Result<()> {
    audit::append(&mut tx, &[event.from_source(Some("cli"))], now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn token(config: Option<&PathBuf>, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            user,
            label,
            expires_in_days,
            scopes,
            db,
        } => {
            let store = open_store(&load(config, &db)?).await?;
            let u = users::user_by_username(&mut *store.read().await?, &user)
                .await?
                .with_context(|| format!("no user named {user}"))?;
            let now = now_ms();
            let expires = expires_in_days.map(|d| now + i64::from(d) * 86_400_000);
            let mut tx = store.begin().await?;
            let scopes = crate::http::admin::token_scopes(&u, &scopes)?;
            let (id, token) = auth::issue_token(&mut tx, u.id, &label, now, expires, &scopes).await?;
            let event = Event::new(None, "token.issue", "token", Some(id.to_string()))
                .with_detail(serde_json::json!({"user_id": u.id, "expires_at": expires}));
            commit_with_audit(tx, event).await?;
            println!("token id: {id}\ntoken:    {token}\n(shown once; store it in your secret manager)");
        }
        TokenCommand::Revoke { id, db } => {
            let store = open_store(&load(config, &db)?).await?;
            let mut tx = store.begin().await?;
            let owner = users::revoke_token(&mut tx, id, now_ms()).await?;
            if owner.is_none() {
                anyhow::bail!("no active token {id}");
            }
            commit_with_audit(
                tx,
                Event::new(None, "token.revoke", "token", Some(id.to_string())),
            )
            .await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

pub async fn user(config: Option<&PathBuf>, cmd: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Create {
        username,
        display_name,
        roles,
        service,
        db,
    } = cmd;
    let store = open_store(&load(config, &db)?).await?;
    for r in &roles {
        Role::parse(r)?;
    }
    let rec = UserRecord {
        id: uuid::Uuid::now_v7(),
        username,
        display_name,
        kind: if service { "service" } else { "person" }.into(),
        roles,
        npi: None,
        active: true,
    };
    let mut tx = store.begin().await?;
    users::insert_user(&mut tx, &rec, now_ms()).await?;
    let event = Event::new(None, "user.create", "user", Some(rec.id.to_string()))
        .with_detail(serde_json::json!({"kind": rec.kind, "roles": rec.roles}));
    commit_with_audit(tx, event).await?;
    println!("created {} ({})", rec.username, rec.id);
    Ok(())
}

pub async fn audit(config: Option<&PathBuf>, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { db } => {
            let store = open_store(&load(config, &db)?).await?;
            let report = chain::verify(&store).await?;
            match report.first_break {
                None => println!(
                    "audit chain intact: {} entries, head {}",
                    report.verified, report.head_seq
                ),
                Some(b) => anyhow::bail!("audit chain BROKEN after {} good entries: {b}", report.verified),
            }
        }
        AuditCommand::Export { output, format, db } => {
            let store = open_store(&load(config, &db)?).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let count = chain::for_each_page(&store, |page| {
                for e in page {
                    let line = if format == "fhir" {
                        crate::audit::balp::audit_event(e).to_string()
                    } else {
                        serde_json::to_string(e).map_err(|e| crate::error::Error::Internal(e.to_string()))?
                    };
                    writeln!(out, "{line}").map_err(|e| crate::error::Error::Internal(e.to_string()))?;
                }
                Ok(())
            })
            .await?;
            out.flush()?;
            drop(out);
            let tx = store.begin().await?;
            let event = Event::new(None, "audit.export", "audit_log", None)
                .with_detail(serde_json::json!({"entries": count}));
            commit_with_audit(tx, event).await?;
            eprintln!("exported {count} entries");
        }
    }
    Ok(())
}

pub async fn keys(config: Option<&PathBuf>, cmd: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate { db } = cmd;
    let cfg = load(config, &db)?;
    let store = open_store(&cfg).await?;
    let keyring = crate::startup::keyring(&cfg, store.backend())?;
    let keys = DataKeys::new(std::sync::Arc::new(keyring), store.clone());
    let count = keys.rotate(now_ms()).await?;
    let tx = store.begin().await?;
    let event = Event::new(
        None,
        "keys.rotate",
        "key_encryption_key",
        Some(keys.active_kek().to_string()),
    )
    .with_detail(serde_json::json!({"rewrapped": count}));
    commit_with_audit(tx, event).await?;
    println!(
        "re-wrapped {count} data keys under key-encryption key '{}'",
        keys.active_kek()
    );
    Ok(())
}
