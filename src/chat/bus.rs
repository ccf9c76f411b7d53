//! Event publication across nodes. Every event is delivered to this node's hub at once; on
//! PostgreSQL it is also announced with `NOTIFY` so other nodes deliver it to their connections.
//! Message events carry only ids over the wire (other nodes load the message themselves, so no
//! message text travels through notifications); small non-message frames travel whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::frames::ServerFrame;
use super::hub::{Hub, MessageMeta, Outbound};
use super::model::Message;
use crate::crypto::datakeys::DataKeys;
use crate::error::Result;
use crate::store::{Backend, Store, rooms};

/// PostgreSQL notification channel shared by all nodes of one database.
pub const CHANNEL: &str = "wardline_events";
/// PostgreSQL rejects notification payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// How long a staged delivery waits for its commit. An error path that loses track of what it
/// staged (a batch that fails after a message was staged) would otherwise leave the entry for the
/// life of the process; a transaction that commits later than this is still delivered, read back
/// from the database instead of from the staged copy.
const STAGED_TTL: Duration = Duration::from_secs(120);

/// A message this node is about to commit: when it was staged, its recipients and its frame.
struct Staged {
    at: Instant,
    members: Vec<Uuid>,
    outbound: Outbound,
}

/// Drops staged deliveries older than [`STAGED_TTL`] at `now`.
fn expire(staged: &mut HashMap<Uuid, Staged>, now: Instant) {
    staged.retain(|_, s| now.saturating_duration_since(s.at) < STAGED_TTL);
}

/// A delivery being prepared from a notification: recipients and the frame.
type Prepared = std::pin::Pin<Box<dyn std::future::Future<Output = Option<(Vec<Uuid>, Outbound)>> + Send>>;

/// Who receives an event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every current member of a room (resolved on each node).
    Room(Uuid),
    /// These users.
    Users(Vec<Uuid>),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    event: Remote,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Remote {
    Message { message_id: Uuid },
    Frame { target: Target, json: String },
}

/// Publishes events to local connections and, on PostgreSQL, to the other nodes.
pub struct Bus {
    hub: Arc<Hub>,
    store: Store,
    node_id: Uuid,
    keys: Arc<DataKeys>,
    staged: std::sync::Mutex<HashMap<Uuid, Staged>>,
}

impl Bus {
    /// A bus for this node.
    pub fn new(hub: Arc<Hub>, store: Store, node_id: Uuid, keys: Arc<DataKeys>) -> Self {
        Self {
            hub,
            store,
            node_id,
            keys,
            staged: Default::default(),
        }
    }

    /// The local hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Delivers a stored message to this node's connections of its room's members (single-node
    /// SQLite). With PostgreSQL, messages go through [`Bus::message_notification`] and
    /// [`Bus::stage`] instead, so that every node delivers them in commit order.
    pub fn publish_message(&self, message: &Message, members: &[Uuid]) {
        self.hub.deliver(members, &message_outbound(message));
    }

    /// The notification to send inside a message's transaction (PostgreSQL only).
    pub fn message_notification(&self, message_id: Uuid) -> Option<String> {
        if self.store.backend() != Backend::Postgres {
            return None;
        }
        serde_json::to_string(&Envelope {
            origin: self.node_id,
            event: Remote::Message { message_id },
        })
        .ok()
    }

    /// Delivers a non-message frame to its target here and on other nodes.
    pub async fn publish(&self, target: Target, frame: &ServerFrame) {
        let json = frame.to_json();
        if let Err(e) = self.deliver_local(&target, json.clone()).await {
            tracing::warn!(error = %e, "event not delivered locally");
        }
        self.notify(Remote::Frame {
            target,
            json: json.to_string(),
        })
        .await;
    }

    async fn deliver_local(&self, target: &Target, json: Arc<str>) -> Result<()> {
        let out = Outbound { json, message: None };
        match target {
            Target::Users(users) => self.hub.deliver(users, &out),
            Target::Room(room) => {
                let members = rooms::member_ids(&mut *self.store.read().await?, *room).await?;
                self.hub.deliver(&members, &out);
            }
        }
        Ok(())
    }

    async fn notify(&self, event: Remote) {
        if self.store.backend() != Backend::Postgres {
            return;
        }
        let payload = match serde_json::to_string(&Envelope {
            origin: self.node_id,
            event,
        }) {
            Ok(p) if p.len() < MAX_PAYLOAD => p,
            Ok(p) => {
                metrics::counter!("wardline_cluster_dropped_total").increment(1);
                tracing::warn!(
                    bytes = p.len(),
                    "cluster event too large to notify; other nodes skip it"
                );
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cluster event not serialisable");
                return;
            }
        };
        let sent: crate::error::Result<()> =
            async { Ok(crate::store::notify(&mut *self.store.read().await?, CHANNEL, &payload).await?) }
                .await;
        if let Err(e) = sent {
            metrics::counter!("wardline_cluster_notify_errors_total").increment(1);
            tracing::warn!(error = %e, "cluster notify failed; remote clients will catch up on resume");
        }
    }

    /// Starts listening for cluster events (PostgreSQL only). Returns once LISTEN is in place,
    /// so nothing published after start-up is missed. Events are prepared concurrently (remote
    /// messages are loaded from the database) but delivered strictly in notification order.
    pub async fn spawn_listener(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<JoinHandle<()>>> {
        if self.store.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = PgListener::connect(self.store.url()).await?;
        listener.listen(CHANNEL).await?;
        let bus = Arc::clone(self);
        Ok(Some(tokio::spawn(async move {
            let mut ready: FuturesOrdered<Prepared> = FuturesOrdered::new();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(delivery) = ready.next(), if !ready.is_empty() => {
                        if let Some((users, out)) = delivery {
                            bus.hub.deliver(&users, &out);
                        }
                    }
                    next = listener.try_recv() => match next {
                        Ok(Some(n)) => ready.push_back(Box::pin(Arc::clone(&bus).prepare(n.payload().to_string()))),
                        Ok(None) => {
                            // The connection dropped and events may have been missed: make
                            // clients resume from their last message (try_recv reconnects).
                            tracing::warn!("cluster listener reconnecting; local clients will resume");
                            bus.staged.lock().unwrap_or_else(|p| p.into_inner()).clear();
                            bus.hub.disconnect_all();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster listener error");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                }
            }
        })))
    }

    /// Keeps a message this node is about to commit, with its recipients, so that delivering it
    /// after the commit (when its notification comes back on PostgreSQL, at once on SQLite)
    /// reads neither again. Call before the commit.
    pub fn stage(&self, message: &Message, members: Vec<Uuid>) {
        let now = Instant::now();
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut staged, now);
        staged.insert(
            message.id,
            Staged {
                at: now,
                members,
                outbound: message_outbound(message),
            },
        );
    }

    /// Delivers a committed message staged with its recipients; false when it was not staged.
    pub fn deliver_staged(&self, message_id: Uuid) -> bool {
        let staged = self
            .staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&message_id);
        match staged {
            Some(s) => {
                self.hub.deliver(&s.members, &s.outbound);
                true
            }
            None => false,
        }
    }

    /// Forgets a staged message whose transaction did not commit.
    pub fn unstage(&self, message_id: Uuid) {
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&message_id);
    }

    /// Turns a notification into a delivery (recipients and frame), if it needs one here.
    async fn prepare(self: Arc<Self>, payload: String) -> Option<(Vec<Uuid>, Outbound)> {
        let Ok(env) = serde_json::from_str::<Envelope>(&payload) else {
            tracing::warn!("unreadable cluster event ignored");
            return None;
        };
        let own = env.origin == self.node_id;
        let result: Result<Option<(Vec<Uuid>, Outbound)>> = async {
            match env.event {
                // Frames from this node were delivered when published.
                Remote::Frame { .. } if own => Ok(None),
                Remote::Frame { target, json } => {
                    let users = match target {
                        Target::Users(users) => users,
                        Target::Room(room) => rooms::member_ids(&mut *self.store.read().await?, room).await?,
                    };
                    Ok(Some((
                        users,
                        Outbound {
                            json: json.into(),
                            message: None,
                        },
                    )))
                }
                Remote::Message { message_id } => {
                    let staged = if own {
                        self.staged
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&message_id)
                    } else {
                        None
                    };
                    if let Some(s) = staged {
                        return Ok(Some((s.members, s.outbound)));
                    }
                    let Some(message) =
                        super::history::load_message(&self.store, &self.keys, message_id).await?
                    else {
                        return Ok(None);
                    };
                    let members = rooms::member_ids(&mut *self.store.read().await?, message.room_id).await?;
                    Ok(Some((members, message_outbound(&message))))
                }
            }
        }
        .await;
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cluster event not delivered; clients catch up on resume");
            None
        })
    }
}

/// The shared outbound form of a `message` frame.
pub fn message_outbound(message: &Message) -> Outbound {
    Outbound {
        json: ServerFrame::Message {
            message: message.clone(),
        }
        .to_json(),
        message: Some(MessageMeta {
            id: message.id,
            seq: message.seq,
            room_id: message.room_id,
            sender_id: message.sender_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(at: Instant) -> Staged {
        Staged {
            at,
            members: vec![Uuid::now_v7()],
            outbound: Outbound {
                json: Arc::from("{}"),
                message: None,
            },
        }
    }

    #[test]
    fn staged_deliveries_expire_and_fresh_ones_stay() {
        let t0 = Instant::now();
        let (old, fresh) = (Uuid::now_v7(), Uuid::now_v7());
        let mut map = HashMap::from([(old, staged(t0)), (fresh, staged(t0 + Duration::from_secs(60)))]);
        expire(&mut map, t0 + STAGED_TTL - Duration::from_millis(1));
        assert_eq!(map.len(), 2, "nothing is older than the TTL yet");
        expire(&mut map, t0 + STAGED_TTL);
        assert!(!map.contains_key(&old), "the abandoned entry is dropped");
        assert!(map.contains_key(&fresh), "a recent entry is kept for its commit");
    }
}
