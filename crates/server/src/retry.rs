//! Retrying what the database or the object store could not do: a step is tried again, 1 s,
//! 2 s, … up to 30 s apart, until it succeeds, the thing it is about is not there, or the server
//! stops. What was recorded stays in the spool meanwhile, so waiting loses nothing.

use std::future::Future;
use std::time::Duration;

use convrec_store::metadata::MetadataError;

use crate::AppState;
use crate::storage::StorageError;

/// Runs a database write now and, if the database is away, again in the background until it
/// succeeds or the server stops: the caller (a request, a media event) goes on meanwhile, and
/// the database ends up saying what happened.
pub async fn write_eventually<T, F, Fut>(app: &AppState, what: &'static str, write: F)
where
    T: Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, MetadataError>> + Send + 'static,
{
    if let Err(e) = write().await {
        tracing::warn!(error = %e, "cannot {what}; trying again until the database is back");
        let shutdown = app.shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = retry_until(what, Some(&shutdown), || {}, &write).await {
                tracing::error!(error = %e, "gave up trying to {what}: the server is stopping");
            }
        });
    }
}

/// Runs `step` until it succeeds, 1 s, 2 s, … up to 30 s apart, calling `failed` after each
/// failure. Returns the error that ends the tries: one that says the thing is not there, or any
/// once `stop` is cancelled (without `stop`, only the first).
pub async fn retry_until<T, E, F, Fut>(
    what: &str,
    stop: Option<&tokio_util::sync::CancellationToken>,
    failed: impl Fn(),
    mut step: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display + IsNotFound,
{
    let mut delay = Duration::from_secs(1);
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_not_found() || stop.is_some_and(|s| s.is_cancelled()) => return Err(e),
            Err(e) => {
                failed();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot {what}; trying again");
                match stop {
                    Some(stop) => {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = stop.cancelled() => {}
                        }
                    }
                    None => tokio::time::sleep(delay).await,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
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
