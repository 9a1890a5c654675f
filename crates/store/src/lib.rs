//! Where convrec keeps things: the [`spool`], the local file in which every block of a recording
//! is made durable before the recorder is told so, and the [`metadata`] (SQLite through sqlx,
//! with migrations). Object storage (`object_store`) joins them as step 2 goes on.

pub mod metadata;
pub mod spool;
