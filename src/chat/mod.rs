//! Real-time chat: rooms, members, messages, receipts, acknowledgements, and their fan-out to
//! WebSocket connections on this node and, through PostgreSQL, on every other node.

pub mod access;
pub mod attachments;
pub mod break_glass;
pub mod bus;
pub mod dlp;
pub mod frames;
pub mod history;
pub mod hub;
pub mod launch;
pub mod lifecycle;
pub mod model;
pub mod receipts;
pub mod retention;
pub mod rooms;
pub mod service;
pub mod system;

pub use service::{Chat, Draft, Page, SendOutcome};
