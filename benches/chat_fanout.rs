//! Chat fan-out benchmark (SPEC §10): a message is posted over REST to a room of N members who
//! are all online over WebSockets; latency is from the start of the POST until the *last* member's
//! socket has received the message (so it includes the durable commit). Messages are sent
//! open-loop at a fixed rate.
//!
//! Run: `cargo bench --bench chat_fanout -- [--members 100] [--rate 200] [--messages 2000]
//!       [--postgres SERVER_URL]` (default: a fresh SQLite file in a temp dir; with `--postgres
//!       postgres://postgres@127.0.0.1:5432` a fresh database is created on that server and dropped).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;
use wardline::chat::model::{MemberReason, RoomKind};
use wardline::startup::Application;
use wardline::store::users::{self, UserRecord};
use wardline::store::{Store, rooms};

struct Args {
    members: usize,
    rate: u64,
    messages: usize,
    postgres: Option<String>,
}

fn args() -> Args {
    let cli = common::Cli::from_env();
    Args {
        members: cli.value("--members").unwrap_or(100),
        rate: cli.value("--rate").unwrap_or(200),
        messages: cli.value("--messages").unwrap_or(2000),
        postgres: cli.postgres(),
    }
}

async fn seed(store: &Store, members: usize) -> anyhow::Result<(Uuid, Vec<String>)> {
    let mut tx = store.begin().await?;
    let room = Uuid::now_v7();
    let new = rooms::NewRoom {
        id: room,
        kind: RoomKind::CareTeam,
        name: "bench",
        encounter_id: None,
        role_key: None,
        direct_key: None,
        created_by: None,
    };
    rooms::insert_room(&mut tx, &new, 0).await?;
    let mut tokens = Vec::new();
    for i in 0..members {
        let u = UserRecord {
            id: Uuid::now_v7(),
            username: format!("bench{i}"),
            display_name: format!("Bench {i}"),
            kind: "person".into(),
            roles: vec!["clinician".into()],
            npi: None,
            active: true,
        };
        users::insert_user(&mut tx, &u, 0).await?;
        rooms::add_member(&mut tx, room, u.id, MemberReason::Invited, None, 0).await?;
        tokens.push(
            wardline::auth::issue_token(&mut tx, u.id, "bench", 0, None, &[])
                .await?
                .1,
        );
    }
    tx.commit().await?;
    Ok((room, tokens))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let postgres = a.postgres.clone();
    common::on_fresh_database(postgres.as_deref(), |url, dir| async move {
        bench(&a, &url, &dir).await
    })
    .await
}

async fn bench(a: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let cfg = common::config(url, dir)?;
    let app = Application::build(cfg).await?;
    let addr = app.local_addr();
    let (room, tokens) = seed(app.store(), a.members).await?;
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    // Every member online; each socket records when it saw message i.
    let mut receivers = Vec::new();
    for token in &tokens {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={token}")).await?;
        loop {
            if let Some(Ok(WsMessage::Text(t))) = ws.next().await
                && serde_json::from_str::<Value>(t.as_str())?["type"] == "ready"
            {
                break;
            }
        }
        let n = a.messages;
        receivers.push(tokio::spawn(async move {
            let mut seen = vec![None; n];
            let mut got = 0;
            while got < n {
                let Ok(Some(Ok(WsMessage::Text(t)))) =
                    tokio::time::timeout(Duration::from_secs(30), ws.next()).await
                else {
                    break;
                };
                let at = Instant::now();
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["type"] == "message"
                    && let Some(i) = v["message"]["body"]
                        .as_str()
                        .and_then(|b| b.strip_prefix("bench "))
                    && let Ok(i) = i.parse::<usize>()
                {
                    seen[i] = Some(at);
                    got += 1;
                }
            }
            seen
        }));
    }

    // Open-loop sender at the target rate.
    let client = reqwest::Client::new();
    let post_url = Arc::new(format!("http://{addr}/api/v1/rooms/{room}/messages"));
    let sender_token = Arc::new(tokens[0].clone());
    let interval = Duration::from_nanos(1_000_000_000 / a.rate.max(1));
    let started = Instant::now();
    let mut sends = Vec::new();
    for i in 0..a.messages {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let (client, url, token) = (client.clone(), post_url.clone(), sender_token.clone());
        sends.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client
                .post(url.as_str())
                .bearer_auth(token.as_str())
                .json(&json!({"body": format!("bench {i}")}))
                .send()
                .await;
            let ok = r.map(|r| r.status().as_u16() == 201).unwrap_or(false);
            (t0, ok, t0.elapsed())
        }));
    }
    let mut starts = Vec::new();
    for s in sends {
        starts.push(s.await?);
    }
    let send_span = started.elapsed();
    let mut seen_by = Vec::new();
    for r in receivers {
        seen_by.push(r.await?);
    }

    let mut latencies = Vec::new();
    let mut incomplete = 0;
    let mut stored: Vec<Duration> = starts.iter().map(|s| s.2).collect();
    stored.sort();
    for (i, (t0, ok, _)) in starts.iter().enumerate() {
        let last = seen_by.iter().map(|s| s[i]).collect::<Option<Vec<_>>>();
        match (ok, last) {
            (true, Some(times)) => latencies.push(times.into_iter().max().unwrap_or(*t0) - *t0),
            _ => incomplete += 1,
        }
    }
    latencies.sort();
    shutdown.cancel();
    let _ = server.await;
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "chat fan-out: {} members online, {} msg/s target, {} messages, {backend}",
        a.members, a.rate, a.messages
    );
    println!(
        "  achieved send rate: {:.0} msg/s",
        a.messages as f64 / send_span.as_secs_f64()
    );
    println!(
        "  messages delivered to every member: {} / {} ({} incomplete)",
        latencies.len(),
        a.messages,
        incomplete
    );
    println!(
        "  POST → 201 (stored): p50 {:.2} ms, p99 {:.2} ms",
        common::percentile(&stored, 0.50).as_secs_f64() * 1e3,
        common::percentile(&stored, 0.99).as_secs_f64() * 1e3,
    );
    if !latencies.is_empty() {
        println!(
            "  POST → last member received: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            common::percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            common::percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        );
    }
    Ok(())
}
