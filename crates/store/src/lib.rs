//! Where convrec keeps things. For now the [`spool`]: the local file in which every block of a
//! recording is made durable before the recorder is told so. Metadata (sqlx) and object storage
//! (`object_store`) join it as step 2 goes on.

pub mod spool;
