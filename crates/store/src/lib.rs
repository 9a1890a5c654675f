//! Where convrec keeps things: the [`spool`], the local file in which every block of a recording
//! is made durable before the recorder is told so, and the [`metadata`] (SQLite through sqlx,
//! with migrations). The server streams finished spool files into the object store.

pub mod metadata;
pub mod spool;
