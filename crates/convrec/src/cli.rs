//! The subcommands, one module each; `anyhow` lives here at the binary's edge only.

pub mod api_client;
pub mod bench_compose;
pub mod bench_ready;
pub mod decrypt;
pub mod demo;
pub mod fixtures;
pub mod inspect;
pub mod keygen;
pub mod loadtest;
pub mod local;
pub mod participant;
pub mod recorder;
pub mod serve;
pub mod usage;
