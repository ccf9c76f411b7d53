//! SMART on FHIR EHR launch (SPEC §5): Wardline is the app the EHR launches inside the patient's
//! chart. [`launch`] runs the OAuth2 + PKCE flow against the EHR and [`context`] decides, with the
//! two-identifier [`matching`], whether the launched patient's room may open.

pub mod config;
pub mod context;
pub mod discovery;
pub mod launch;
pub mod matching;
pub mod pages;
pub mod patient;

pub use config::SmartConfig;
