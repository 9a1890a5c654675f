//! Retrying what the database or the object store could not do: a step is tried again, 1 s,
//! 2 s, … up to 30 s apart, until it succeeds, the thing it is about is not there, or the server
//! stops. What was recorded stays in the spool meanwhile, so waiting loses nothing.

use std::future::Future;
use std::time::Duration;

use convrec_store::metadata::{Metadata, MetadataError};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::storage::StorageError;

/// Runs a database write about the object `id` now and, if the database is away
/// ([`MetadataError::is_unavailable`]), again in the background (first after a second) until it
/// succeeds or the server stops: the caller (a request, a media event) goes on meanwhile, and
/// the database ends up saying what happened. Any other failure is logged as an error.
pub async fn write_eventually<T, F, Fut>(app: &AppState, what: &'static str, id: &str, write: F)
where
    T: Send + 'static,
    F: Fn(Metadata, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, MetadataError>> + Send + 'static,
{
    let (metadata, id) = (app.metadata.clone(), id.to_owned());
    let attempt = move || write(metadata.clone(), id.clone());
    match attempt().await {
        Ok(_) => return,
        // Only a database that is away is waited for: a refusal will not change.
        Err(e) if !e.is_unavailable() => {
            tracing::error!(error = %e, "cannot {what}");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot {what}; trying again until the database is back")
        }
    }
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        pause(FIRST_DELAY, Some(&shutdown)).await;
        if let Err(e) = retry_until(what, Some(&shutdown), || {}, &attempt).await {
            tracing::error!(error = %e, "gave up trying to {what}: the server is stopping");
        }
    });
}

/// Runs `step` until it succeeds, 1 s, 2 s, … up to 30 s apart, calling `failed` after each
/// failure. Returns the error that ends the tries: one that says the thing is not there, or any
/// once `stop` is cancelled (without `stop`, only the first).
pub async fn retry_until<T, E, F, Fut>(
    what: &str,
    stop: Option<&CancellationToken>,
    failed: impl Fn(),
    mut step: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display + IsNotFound,
{
    let mut delay = FIRST_DELAY;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_not_found() || stop.is_some_and(|s| s.is_cancelled()) => return Err(e),
            Err(e) => {
                failed();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot {what}; trying again");
                pause(delay, stop).await;
                delay = (delay * 2).min(LAST_DELAY);
            }
        }
    }
}

/// The wait after the first failure; each next one is twice as long, up to [`LAST_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const LAST_DELAY: Duration = Duration::from_secs(30);

/// Sleeps `delay`, or until `stop` is cancelled.
async fn pause(delay: Duration, stop: Option<&CancellationToken>) {
    match stop {
        Some(stop) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => {}
            }
        }
        None => tokio::time::sleep(delay).await,
    }
}

/// Whether an error says the thing asked for is not there.
pub trait IsNotFound {
    /// It is not there.
    fn is_not_found(&self) -> bool;
}

impl IsNotFound for StorageError {
    fn is_not_found(&self) -> bool {
        match self {
            StorageError::Store(object_store::Error::NotFound { .. }) => true,
            // A local upload's directory.
            StorageError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// A spool file that is not there will not come back.
impl IsNotFound for std::io::Error {
    fn is_not_found(&self) -> bool {
        self.kind() == std::io::ErrorKind::NotFound
    }
}

impl IsNotFound for MetadataError {
    fn is_not_found(&self) -> bool {
        false
    }
}
