//! SMART on FHIR EHR launch (SPEC §5): Wardline is the app the EHR launches. So far: the
//! two-identifier patient match ([`matching`]) that decides whether the launched patient's room
//! may open. The launch and callback endpoints, OIDC sign-in and the web app are still to come
//! (issue 6).

pub mod matching;
