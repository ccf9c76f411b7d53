//! Delivery receipts, written in batches: one push to a 100-member room yields 99 deliveries, and
//! writing them one transaction each would cost more than the message itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::bus::{Bus, Target};
use super::frames::ServerFrame;
use super::hub::MessageMeta;
use super::model::{Receipt, from_ms};
use crate::clock::Clock;
use crate::store::{Store, messages};

/// A message frame that reached one of a recipient's connections.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    /// The message.
    pub meta: MessageMeta,
    /// The recipient.
    pub user_id: Uuid,
}

/// Rows per transaction: small enough that a batch never holds the (single, on SQLite) writer
/// for more than a millisecond or two, so message sends do not queue behind receipts.
const MAX_BATCH: usize = 200;

/// Starts the writer; it stops after every sender is dropped and the queue is drained.
pub fn spawn(
    store: Store,
    bus: Arc<Bus>,
    clock: Arc<dyn Clock>,
) -> (mpsc::UnboundedSender<Delivered>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivered>();
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if let Err(e) = write_batch(&store, &bus, clock.as_ref(), &batch).await {
                metrics::counter!("wardline_receipt_write_errors_total").increment(1);
                tracing::warn!(error = %e, count = batch.len(), "delivery receipts not recorded");
            }
            batch.clear();
        }
    });
    (tx, handle)
}

async fn write_batch(
    store: &Store,
    bus: &Bus,
    clock: &dyn Clock,
    batch: &[Delivered],
) -> crate::error::Result<()> {
    let mut senders = HashMap::new();
    let mut seen = HashSet::new();
    let pairs: Vec<(Uuid, Uuid)> = batch
        .iter()
        .filter(|d| d.meta.sender_id != Some(d.user_id))
        .filter(|d| seen.insert((d.meta.id, d.user_id)))
        .map(|d| {
            senders.insert(d.meta.id, d.meta.sender_id);
            (d.meta.id, d.user_id)
        })
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    let now = clock.now();
    messages::record_deliveries(store, &pairs, now.timestamp_millis()).await?;
    // One frame per sender for the whole batch.
    let mut by_sender: HashMap<Uuid, Vec<Receipt>> = HashMap::new();
    for (message_id, user_id) in pairs {
        let Some(Some(sender)) = senders.get(&message_id) else {
            continue;
        };
        by_sender.entry(*sender).or_default().push(Receipt {
            message_id,
            user_id,
            delivered_at: Some(from_ms(now.timestamp_millis())),
            read_at: None,
        });
    }
    for (sender, receipts) in by_sender {
        bus.publish(Target::Users(vec![sender]), &ServerFrame::Receipt { receipts })
            .await;
    }
    Ok(())
}
