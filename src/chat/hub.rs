//! In-process fan-out: which WebSocket connections each user has on this node, and delivery of a
//! pre-serialised frame to a set of users. A connection whose queue is full is dropped rather than
//! allowed to slow everyone else; its client reconnects and resumes without gaps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use uuid::Uuid;

/// A message frame's identity, so a connection can dedupe against its resume replay and report
/// delivery.
#[derive(Clone, Copy, Debug)]
pub struct MessageMeta {
    /// Message id.
    pub id: Uuid,
    /// Stream position.
    pub seq: i64,
    /// Its room.
    pub room_id: Uuid,
    /// Its author (no delivery receipt for the author's own devices).
    pub sender_id: Option<Uuid>,
}

/// One frame on its way to a connection.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// The JSON text, shared between all recipients.
    pub json: Arc<str>,
    /// Set for `message` frames.
    pub message: Option<MessageMeta>,
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Outbound>,
}

/// Registry of live connections on this node.
pub struct Hub {
    conns: RwLock<HashMap<Uuid, Vec<Conn>>>,
    next_id: AtomicU64,
    queue: usize,
}

impl Hub {
    /// A hub whose connections buffer at most `queue` frames.
    pub fn new(queue: usize) -> Self {
        Self {
            conns: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
        }
    }

    /// Registers a connection for `user`; frames arrive on the returned receiver.
    pub fn register(&self, user: Uuid) -> (u64, mpsc::Receiver<Outbound>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let mut map = self.conns.write().unwrap_or_else(|p| p.into_inner());
        map.entry(user).or_default().push(Conn { id, tx });
        metrics::gauge!("wardline_ws_connections").increment(1.0);
        (id, rx)
    }

    /// Forgets a connection (idempotent).
    pub fn unregister(&self, user: Uuid, conn_id: u64) {
        let mut map = self.conns.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(&user) {
            let before = list.len();
            list.retain(|c| c.id != conn_id);
            if list.len() < before {
                metrics::gauge!("wardline_ws_connections").decrement(1.0);
            }
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }

    /// Queues `frame` for every connection of every listed user on this node. Connections that
    /// cannot keep up are disconnected.
    pub fn deliver(&self, users: &[Uuid], frame: &Outbound) {
        let mut slow = Vec::new();
        {
            let map = self.conns.read().unwrap_or_else(|p| p.into_inner());
            for user in users {
                for conn in map.get(user).into_iter().flatten() {
                    match conn.tx.try_send(frame.clone()) {
                        Ok(()) => metrics::counter!("wardline_ws_frames_total").increment(1),
                        Err(mpsc::error::TrySendError::Full(_)) => slow.push((*user, conn.id)),
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
        }
        for (user, id) in slow {
            metrics::counter!("wardline_ws_dropped_slow_total").increment(1);
            self.unregister(user, id);
        }
    }

    /// Disconnects everyone on this node, e.g. after cluster events may have been missed; clients
    /// reconnect and resume from their last message.
    pub fn disconnect_all(&self) {
        let mut map = self.conns.write().unwrap_or_else(|p| p.into_inner());
        let n: usize = map.values().map(Vec::len).sum();
        map.clear();
        metrics::gauge!("wardline_ws_connections").decrement(n as f64);
    }

    /// Whether the user has a connection on this node.
    pub fn is_connected(&self, user: Uuid) -> bool {
        let map = self.conns.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(&user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Outbound {
        Outbound {
            json: Arc::from(text),
            message: None,
        }
    }

    #[tokio::test]
    async fn delivers_to_every_connection_of_listed_users_only() {
        let hub = Hub::new(8);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (_, mut a1) = hub.register(a);
        let (_, mut a2) = hub.register(a);
        let (_, mut b1) = hub.register(b);
        hub.deliver(&[a], &frame("x"));
        assert_eq!(&*a1.recv().await.unwrap().json, "x");
        assert_eq!(&*a2.recv().await.unwrap().json, "x");
        assert!(b1.try_recv().is_err());
    }

    #[tokio::test]
    async fn slow_connections_are_dropped_not_waited_for() {
        let hub = Hub::new(2);
        let a = Uuid::now_v7();
        let (_, mut rx) = hub.register(a);
        for _ in 0..3 {
            hub.deliver(&[a], &frame("x"));
        }
        assert!(!hub.is_connected(a));
        // The two queued frames are still readable, then the channel reports closed.
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
    }
}
