//! Wardline: a self-hosted care-team messaging server for hospitals.
//!
//! Modules are laid out by feature: `chat` (rooms, messages, real-time fan-out), `store` (the only
//! place SQL lives), `http` (REST, WebSocket, operations endpoints), `fhir` (the FHIR R4 API),
//! `hl7` (ADT over MLLP), `auth` (bearer tokens), plus configuration, errors, start-up and the
//! command line.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod fhir;
pub mod hl7;
pub mod http;
pub mod oncall;
pub mod smart;
pub mod startup;
pub mod store;
pub mod telemetry;
