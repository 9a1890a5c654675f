//! The subcommands, one module each; `anyhow` lives here at the binary's edge only.

pub mod api_client;
pub mod demo;
pub mod fixtures;
pub mod inspect;
pub mod participant;
pub mod recorder;
pub mod serve;
pub mod usage;
