//! The engine: decides, never does I/O. No web-sys, no sockets, no clock, no global RNG.

pub mod auth;
pub mod cloud;
pub mod crypto;
pub mod deploy;
pub mod error;
pub mod graph;
pub mod http;
pub mod permissions;
pub mod properties;
pub mod provision;
pub mod retry;
pub mod secret;
pub mod zip;
