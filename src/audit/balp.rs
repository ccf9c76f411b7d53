//! Audit entries as FHIR R4 `AuditEvent` resources in the shape of IHE Basic Audit Log Patterns
//! (BALP): RESTful-operation type, the CRUDE action, the requesting agent with its network
//! address, Wardline as the observing source, and the entity acted on. The chain position and
//! hashes travel along so an exported log can still be verified.

use serde_json::{Value, json};

use super::Entry;

/// FHIR `AuditEvent.action` for a Wardline action verb.
pub fn crude(action: &str) -> &'static str {
    let verb = action.rsplit('.').next().unwrap_or_default();
    match verb {
        "view" | "list" | "search" | "download" | "catch_up" | "verify" | "access" | "export" | "connect" => {
            "R"
        }
        "create" | "send" | "upload" | "place" | "issue" | "break_glass" => "C",
        "read" | "ack" | "review" | "archive" | "rotate" | "add" | "release" => "U",
        "remove" | "revoke" | "purge" => "D",
        _ => "E",
    }
}

/// The BALP profile matching the action.
fn profile(action: &str) -> &'static str {
    match crude(action) {
        "C" => "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create",
        "R" => "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read",
        "U" => "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Update",
        "D" => "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Delete",
        _ => "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Execute",
    }
}

/// One entry as an `AuditEvent`.
pub fn audit_event(e: &Entry) -> Value {
    let recorded = crate::fhir::resources::instant(e.at);
    let mut agent = json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
        "requestor": true,
    });
    match &e.actor_id {
        Some(actor) => agent["who"] = json!({"identifier": {"system": "urn:wardline:user", "value": actor}}),
        None => {
            agent["who"] =
                json!({"display": e.source.as_deref().map_or("system", |_| "unauthenticated client")})
        }
    }
    if let Some(src) = &e.source {
        agent["network"] =
            json!({"address": src, "type": if src.parse::<std::net::IpAddr>().is_ok() { "2" } else { "5" }});
    }
    let mut entity = json!({
        "type": {"system": "urn:wardline:entity-type", "code": e.entity_type},
        "detail": [
            {"type": "wardline-seq", "valueString": e.seq.to_string()},
            {"type": "wardline-prev-hash", "valueString": e.prev_hash},
            {"type": "wardline-hash", "valueString": e.hash},
            {"type": "wardline-detail", "valueString": e.detail},
        ],
    });
    if let Some(id) = &e.entity_id {
        entity["what"] =
            json!({"identifier": {"system": format!("urn:wardline:{}", e.entity_type), "value": id}});
    }
    json!({
        "resourceType": "AuditEvent",
        "id": format!("wardline-audit-{}", e.seq),
        "meta": {"profile": [profile(&e.action)]},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "urn:wardline:audit-action", "code": e.action}],
        "action": crude(&e.action),
        "recorded": recorded,
        "outcome": if e.outcome == "success" { "0" } else { "4" },
        "agent": [agent],
        "source": {
            "observer": {"display": "Wardline"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
        "entity": [entity],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Event, GENESIS, next_entry};

    #[test]
    fn maps_actions_outcomes_agents_and_chain() {
        let ev = Event::new(Some(uuid::Uuid::nil()), "room.view", "room", Some("r1".into()))
            .from_source(Some("10.1.2.3"));
        let e = next_entry(0, GENESIS, &ev, 1_700_000_000_000);
        let a = audit_event(&e);
        assert_eq!(a["resourceType"], "AuditEvent");
        assert_eq!(a["action"], "R");
        assert_eq!(a["outcome"], "0");
        assert_eq!(a["recorded"], "2023-11-14T22:13:20.000Z");
        assert_eq!(a["agent"][0]["network"]["address"], "10.1.2.3");
        assert_eq!(
            a["agent"][0]["who"]["identifier"]["value"],
            uuid::Uuid::nil().to_string()
        );
        assert_eq!(a["entity"][0]["what"]["identifier"]["value"], "r1");
        assert_eq!(a["entity"][0]["detail"][2]["valueString"], e.hash);
        assert!(
            a["meta"]["profile"][0]
                .as_str()
                .unwrap()
                .ends_with("IHE.BasicAudit.Read")
        );

        let failed = next_entry(
            1,
            &e.hash,
            &Event::new(None, "auth.login", "token", None)
                .from_source(Some("cli"))
                .failed(),
            0,
        );
        let f = audit_event(&failed);
        assert_eq!(
            (f["action"].as_str().unwrap(), f["outcome"].as_str().unwrap()),
            ("E", "4")
        );
        assert_eq!(f["agent"][0]["network"]["type"], "5");
        assert!(f["entity"][0].get("what").is_none());
    }

    #[test]
    fn crude_codes() {
        assert_eq!(crude("message.send"), "C");
        assert_eq!(crude("attachment.download"), "R");
        assert_eq!(crude("message.ack"), "U");
        assert_eq!(crude("room.purge"), "D");
        assert_eq!(crude("auth.login"), "E");
    }
}
