//! End-to-end tests of the HTTP API and WebSocket over real sockets and real databases. Each
//! scenario runs on SQLite and on PostgreSQL.

mod helpers;

mod access;
mod attachments;
mod audit;
mod auth;
mod browser;
mod chat_rest;
mod cluster;
mod dlp;
mod encryption;
mod fhir;
mod fhir_roster;
mod fhir_support;
mod fhir_write;
mod fhir_write_errors;
mod hl7;
mod hl7_process;
mod hl7_support;
mod mllp;
mod oncall;
mod ops;
mod process;
mod retention;
mod rooms;
mod smart;
mod smart_support;
mod smtp_support;
mod tls;
mod ws;
