//! convrec's domain, free of I/O: the [`recorder_protocol`] (what a recorder and the server say
//! to each other over the entry-point WebSocket) and the [`config`] property table. The
//! recording orchestrator joins them in step 3.

pub mod config;
pub mod orchestrator;
pub mod recorder_protocol;
