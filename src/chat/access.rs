//! Access checks shared by the chat operations: role gate, room membership, and the audit
//! records of refusals (membership, DLP, failed decryption).

use serde_json::json;
use uuid::Uuid;

use super::service::Chat;
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::rooms;

impl Chat {
    /// Passes `result` through; a decryption failure (tampering, unknown or destroyed key) is also
    /// recorded in the audit trail as a failed access, since it may be an attack on stored data.
    pub(crate) async fn integrity<T>(
        &self,
        who: &Principal,
        entity_type: &str,
        entity_id: impl ToString,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(Error::Crypto(reason)) = &result {
            let event = who
                .event("integrity.check", entity_type, entity_id.to_string())
                .failed()
                .with_detail(json!({"reason": reason}));
            self.audit.record(event).await?;
        }
        result
    }

    /// Records a DLP refusal (kinds only, never the text) and returns it.
    pub(crate) async fn dlp_refusal(
        &self,
        who: &Principal,
        room_id: Uuid,
        action: &str,
        refusal: Error,
    ) -> Error {
        let kinds = match &refusal {
            Error::DlpWarning(k) | Error::DlpBlocked(k) => k.clone(),
            _ => Vec::new(),
        };
        let detail = json!({"room_id": room_id, "dlp": {"action": action, "kinds": kinds}});
        match self
            .audit
            .record(
                who.event("message.send", "room", room_id)
                    .failed()
                    .with_detail(detail),
            )
            .await
        {
            Ok(()) => refusal,
            Err(e) => e,
        }
    }

    /// Records a refused access to a room (outside any transaction) and returns the refusal.
    pub(crate) async fn denied(&self, who: &Principal, action: &str, room_id: Uuid) -> Error {
        let event = who.event(action, "room", room_id).failed();
        match self.audit.record(event).await {
            Ok(()) => Error::NotMember,
            Err(e) => e,
        }
    }

    /// Chat is for clinicians and schedulers; auditors, admins and integration accounts do not
    /// read conversations (least privilege). A refusal is audited.
    pub async fn require_clinical(&self, who: &Principal, action: &str) -> Result<()> {
        let roles = [Role::Clinician, Role::Scheduler];
        self.audit
            .gate(who, &roles, action, ("chat", None), Record::Refusals)
            .await
    }

    /// Fails unless `who` is a member of the room (404 for an unknown room, 403 otherwise).
    pub async fn require_member(&self, who: &Principal, room_id: Uuid) -> Result<()> {
        self.require_clinical(who, "room.access").await?;
        if rooms::is_member(&mut *self.store.read().await?, room_id, who.user_id).await? {
            return Ok(());
        }
        let found = rooms::room_by_id(&mut *self.store.read().await?, room_id).await?;
        match found {
            None => Err(Error::NotFound("room")),
            Some(_) => Err(self.denied(who, "room.access", room_id).await),
        }
    }
}
