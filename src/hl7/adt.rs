//! The ADT event table (SPEC §3) as a pure function: given an event and the encounter as it is
//! stored, decide the encounter as it must be, what happens to its room, whether the unit team
//! changes, and what the room is told. No I/O, no clock: `apply` carries the decision out.

use serde::{Deserialize, Serialize};

use super::message::{Adt, Class, Location, Problem, Trigger};
use crate::store::encounters::EncounterRow;

/// Room timing after discharge, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Discharge → read-only.
    pub discharge_grace_ms: i64,
    /// Discharge (or cancelled admission) → archived.
    pub archive_after_ms: i64,
}

/// Practitioner ids by their role in the encounter, as stored on the encounter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Practitioners {
    /// PV1-7.
    pub attending: Vec<String>,
    /// PV1-9.
    pub consulting: Vec<String>,
    /// PV1-17.
    pub admitting: Vec<String>,
}

impl Practitioners {
    /// Reads the stored JSON; an unreadable value counts as none named.
    pub fn from_json(s: &str) -> Self {
        serde_json::from_str(s).unwrap_or_default()
    }

    /// The stored JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// HL7 sends a field only to change it: an empty list keeps what was known.
    fn updated_by(&self, attending: &[String], consulting: &[String], admitting: &[String]) -> Self {
        let pick = |new: &[String], old: &Vec<String>| {
            if new.is_empty() { old.clone() } else { new.to_vec() }
        };
        Self {
            attending: pick(attending, &self.attending),
            consulting: pick(consulting, &self.consulting),
            admitting: pick(admitting, &self.admitting),
        }
    }
}

/// What happens to the encounter's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAction {
    /// Ensure it exists and is active (admit, register, pre-admit).
    Open,
    /// Leave it as it is.
    Keep,
    /// Discharged: read-only and archived at these times.
    Schedule {
        /// Unix ms.
        read_only_at: i64,
        /// Unix ms.
        archive_at: i64,
    },
    /// Cancelled admission: read-only now, archived later.
    CloseNow {
        /// Unix ms.
        archive_at: i64,
    },
    /// Cancelled discharge: active again, nothing scheduled.
    Reopen,
}

/// The decided change to one encounter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterPlan {
    /// The encounter as it must be stored (`id` and `patient_id` are empty for a new one).
    pub next: EncounterRow,
    /// Whether it is created now.
    pub is_new: bool,
    /// Room consequence.
    pub room: RoomAction,
    /// Whether attending/consulting/admitting membership must be brought in line.
    pub practitioners_changed: bool,
    /// `(from, to)` points of care when the unit care team must be swapped.
    pub unit_change: Option<(Option<String>, Option<String>)>,
    /// System message for the room.
    pub note: Option<String>,
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Change the encounter.
    Apply(Box<EncounterPlan>),
    /// The event is older than the newest applied to this encounter: record, change nothing.
    Stale,
    /// The event does not touch an encounter (demographics, merge, or A08 without a known one).
    NoEncounter,
}

/// Whether demographics from an event at `event_at` replace those held from `held_at`.
pub fn demographics_win(held_at: Option<i64>, event_at: i64) -> bool {
    held_at.is_none_or(|held| event_at >= held)
}

fn location_of(row: &EncounterRow) -> Location {
    Location {
        unit: row.location_unit.clone(),
        room: row.location_room.clone(),
        bed: row.location_bed.clone(),
    }
}

fn set_location(row: &mut EncounterRow, l: &Location) {
    row.location_unit = l.unit.clone();
    row.location_room = l.room.clone();
    row.location_bed = l.bed.clone();
}

fn unknown_encounter() -> Problem {
    Problem {
        code: "204",
        location: Some(("PV1".into(), 1, 19)),
        reason: "PV1-19 names no encounter known to Wardline (was the admission sent?)".into(),
    }
}

/// Decides what `adt` does to the encounter it names; `current` is that encounter as stored
/// (found by visit number), `visit_system` the system new encounters get.
pub fn plan(
    adt: &Adt,
    current: Option<&EncounterRow>,
    visit_system: &str,
    t: Timing,
) -> Result<Decision, Problem> {
    let at = adt.event_at.timestamp_millis();
    let Some(visit) = adt.visit.as_ref().filter(|v| v.number.is_some()) else {
        return Ok(Decision::NoEncounter);
    };
    if matches!(adt.trigger, Trigger::A31 | Trigger::A40) {
        return Ok(Decision::NoEncounter);
    }
    if let Some(cur) = current
        && cur.last_event_at.is_some_and(|newest| at < newest)
    {
        return Ok(Decision::Stale);
    }
    let mut next = match current {
        Some(cur) => cur.clone(),
        None => match adt.trigger {
            Trigger::A01 | Trigger::A04 | Trigger::A05 => EncounterRow {
                visit_system: visit_system.into(),
                visit_number: visit.number.clone().unwrap_or_default(),
                class: Class::Inpatient.as_str().into(),
                status: "in-progress".into(),
                practitioners: "{}".into(),
                ..EncounterRow::default()
            },
            Trigger::A08 => return Ok(Decision::NoEncounter),
            _ => return Err(unknown_encounter()),
        },
    };
    next.last_event_at = Some(at);
    let before = location_of(&next);
    let held = Practitioners::from_json(&next.practitioners);
    let named = held.updated_by(&visit.attending, &visit.consulting, &visit.admitting);
    let mut room = RoomAction::Keep;
    let mut note = None;
    let mut take_practitioners = true;
    match adt.trigger {
        Trigger::A01 | Trigger::A04 | Trigger::A05 => {
            let default_class = if adt.trigger == Trigger::A04 {
                Class::Outpatient
            } else {
                Class::Inpatient
            };
            let class = visit.class.map(Class::as_str).unwrap_or(if current.is_some() {
                next.class.as_str()
            } else {
                default_class.as_str()
            });
            next.class = class.into();
            next.status = if adt.trigger == Trigger::A05 {
                "planned"
            } else {
                "in-progress"
            }
            .into();
            if !visit.location.is_empty() {
                set_location(&mut next, &visit.location);
            }
            next.admitted_at = visit
                .admitted_at
                .map(|a| a.timestamp_millis())
                .or(next.admitted_at)
                .or((adt.trigger != Trigger::A05).then_some(at));
            next.discharged_at = None;
            room = RoomAction::Open;
            let place = location_of(&next).label();
            note = match (current.is_some(), adt.trigger) {
                (false, Trigger::A01) => Some(format!("Admitted to {place}.")),
                (false, Trigger::A04) => Some(format!("Registered at {place}.")),
                (false, _) => Some(format!("Pre-admission for {place}.")),
                (true, _) if before != location_of(&next) => Some(format!("Location updated to {place}.")),
                (true, _) => None,
            };
        }
        Trigger::A02 => {
            if visit.location.is_empty() {
                return Err(Problem {
                    code: "101",
                    location: Some(("PV1".into(), 1, 3)),
                    reason: "PV1-3 (new location) is required for a transfer".into(),
                });
            }
            next.prior_unit = before.unit.clone();
            next.prior_room = before.room.clone();
            next.prior_bed = before.bed.clone();
            set_location(&mut next, &visit.location);
            note = Some(format!(
                "Transferred from {} to {}.",
                before.label(),
                visit.location.label()
            ));
        }
        Trigger::A03 => {
            let discharged = visit.discharged_at.map(|d| d.timestamp_millis()).unwrap_or(at);
            next.status = "finished".into();
            next.discharged_at = Some(discharged);
            room = RoomAction::Schedule {
                read_only_at: discharged + t.discharge_grace_ms,
                archive_at: discharged + t.archive_after_ms,
            };
            note = Some("Discharged. This room becomes read-only after the grace period.".into());
        }
        Trigger::A06 | Trigger::A07 => {
            let default = if adt.trigger == Trigger::A06 {
                Class::Inpatient
            } else {
                Class::Outpatient
            };
            let class = visit.class.unwrap_or(default);
            next.class = class.as_str().into();
            if !visit.location.is_empty() {
                set_location(&mut next, &visit.location);
            }
            note = Some(format!("Encounter changed to {}.", class.as_str()));
        }
        Trigger::A08 => {
            if let Some(class) = visit.class {
                next.class = class.as_str().into();
            }
        }
        Trigger::A11 => {
            next.status = "cancelled".into();
            room = RoomAction::CloseNow {
                archive_at: at + t.archive_after_ms,
            };
            note = Some("Admission cancelled. This room is now read-only.".into());
            take_practitioners = false;
        }
        Trigger::A12 => {
            let back = if visit.location.is_empty() {
                Location {
                    unit: next.prior_unit.clone(),
                    room: next.prior_room.clone(),
                    bed: next.prior_bed.clone(),
                }
            } else {
                visit.location.clone()
            };
            if back.is_empty() {
                return Err(Problem {
                    code: "101",
                    location: Some(("PV1".into(), 1, 3)),
                    reason: "no transfer to cancel and PV1-3 is empty".into(),
                });
            }
            set_location(&mut next, &back);
            next.prior_unit = None;
            next.prior_room = None;
            next.prior_bed = None;
            note = Some(format!("Transfer cancelled; back in {}.", back.label()));
        }
        Trigger::A13 => {
            next.status = "in-progress".into();
            next.discharged_at = None;
            room = RoomAction::Reopen;
            note = Some("Discharge cancelled. This room is open again.".into());
        }
        Trigger::A31 | Trigger::A40 => return Ok(Decision::NoEncounter),
    }
    let practitioners_changed = take_practitioners && (current.is_none() || named != held);
    if take_practitioners {
        next.practitioners = named.to_json();
    }
    let after = location_of(&next);
    let unit_change = (current.is_none() || before.unit != after.unit).then_some((before.unit, after.unit));
    Ok(Decision::Apply(Box::new(EncounterPlan {
        next,
        is_new: current.is_none(),
        room,
        practitioners_changed,
        unit_change: unit_change.filter(|(from, to)| from != to),
        note,
    })))
}

#[cfg(test)]
#[path = "adt_tests.rs"]
mod tests;
