//! HL7 v2 over MLLP (SPEC §3). This first layer reads ER7 text safely; the MLLP listener, ACKs,
//! the ADT event table and the durable inbox build on it (issue 4).

pub mod ack;
pub mod er7;
