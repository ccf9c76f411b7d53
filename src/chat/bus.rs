//! Event publication across nodes. Every event is delivered to this node's hub at once; on
//! PostgreSQL it is also announced with `NOTIFY` so other nodes deliver it to their connections.
//! Message events carry only ids over the wire (other nodes load the message themselves, so no
//! message text travels through notifications); small non-message frames travel whole.

use std::sync::Arc;
use std::time::Duration;

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
}

impl Bus {
    /// A bus for this node.
    pub fn new(hub: Arc<Hub>, store: Store, node_id: Uuid, keys: Arc<DataKeys>) -> Self {
        Self {
            hub,
            store,
            node_id,
            keys,
        }
    }

    /// The local hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Delivers a stored message to its room's members. On SQLite (one node) this happens here;
    /// on PostgreSQL every node, this one included, delivers it when the notification written by
    /// [`Bus::message_notification`] inside the message's transaction arrives — notifications
    /// arrive in commit order, so every connection sees messages in stream order and a client
    /// resuming after the last message it saw can never skip one.
    pub async fn publish_message(&self, message: &Message, members: &[Uuid]) {
        if self.store.backend() == Backend::Sqlite {
            self.hub.deliver(members, &message_outbound(message));
        }
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
                let members = rooms::member_ids(self.store.reader(), *room).await?;
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
        let sent = crate::store::notify(self.store.reader(), CHANNEL, &payload).await;
        if let Err(e) = sent {
            metrics::counter!("wardline_cluster_notify_errors_total").increment(1);
            tracing::warn!(error = %e, "cluster notify failed; remote clients will catch up on resume");
        }
    }

    /// Starts listening for other nodes' events (PostgreSQL only). Returns once LISTEN is in place,
    /// so nothing published after start-up is missed.
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
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(n)) => bus.on_remote(n.payload()).await,
                    Ok(None) => {
                        // The connection dropped and events may have been missed: make clients
                        // resume from their last message (the listener reconnects on next call).
                        tracing::warn!("cluster listener reconnecting; local clients will resume");
                        bus.hub.disconnect_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster listener error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })))
    }

    async fn on_remote(&self, payload: &str) {
        let Ok(env) = serde_json::from_str::<Envelope>(payload) else {
            tracing::warn!("unreadable cluster event ignored");
            return;
        };
        let result = match env.event {
            // Frames from this node were delivered when published.
            Remote::Frame { .. } if env.origin == self.node_id => Ok(()),
            Remote::Frame { target, json } => self.deliver_local(&target, json.into()).await,
            // Messages are delivered here for every origin, in notification (= commit) order.
            Remote::Message { message_id } => self.deliver_remote_message(message_id).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cluster event not delivered");
        }
    }

    async fn deliver_remote_message(&self, message_id: Uuid) -> Result<()> {
        let Some(message) = super::history::load_message(&self.store, &self.keys, message_id).await? else {
            return Ok(());
        };
        let members = rooms::member_ids(self.store.reader(), message.room_id).await?;
        self.hub.deliver(&members, &message_outbound(&message));
        Ok(())
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
