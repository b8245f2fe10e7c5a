//! One file per request family.

pub mod admin;
pub mod consumer;
pub mod pull;
pub mod query;
pub mod send;
pub mod send_back;
