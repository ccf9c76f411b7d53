//! HL7 v2 ADT over MLLP (SPEC §3): the feed that opens, moves, closes and merges
//! patient-encounter rooms.
//!
//! Layers, outermost first: [`mllp`] (sockets and framing) and `POST /hl7` hand frames to
//! [`ingest::Hl7`], which reads them without I/O ([`ingest::prepare`] over [`er7`], [`message`],
//! [`dtm`]), decides each event's effect without I/O ([`adt`]), carries it out in a transaction
//! ([`apply`]) and answers with an original-mode [`ack`] only after commit. [`inbox`] lists and
//! replays stored messages; [`mapping`] is the site configuration.

pub mod ack;
pub mod adt;
pub mod apply;
pub mod direct;
pub mod dtm;
pub mod er7;
pub mod inbox;
pub mod ingest;
pub mod mapping;
pub mod members;
pub mod message;
pub mod mllp;
pub mod model;
pub mod patients;
pub mod read;

pub use ingest::Hl7;
pub use mapping::Hl7Config;
