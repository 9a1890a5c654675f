//! convrec's domain, free of I/O. For now the [`recorder_protocol`]: what a recorder and the
//! server say to each other over the entry-point WebSocket. Configuration scopes and the
//! recording orchestrator join it in step 3.

pub mod recorder_protocol;
