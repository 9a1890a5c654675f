//! Several server nodes sharing one database and one object store (see docs/operations.md,
//! "Several nodes").
//!
//! - Each node holds a lease in the database ([`run`] renews it every quarter of its length).
//! - A conversation's live state (calls, layers, media, its recording) lives on one node, its
//!   host: the first node that serves a request for it. Requests for it that reach another
//!   node are forwarded there ([`route`]), WebSocket upgrades and event streams included; the
//!   host's SDP answers name its own media address, so media goes to it directly.
//! - A recording is run by its conversation's host; its recorder's entry point is forwarded
//!   there the same way.
//! - When a node's lease runs out, another node takes it over: it ends the calls and layers the
//!   lost node hosted and finishes its recordings from what reached the object store
//!   ([`crate::recording::take_over`]). A node takes others over only after it has itself been
//!   in touch with the database for a whole lease, so that a database outage, which stops every
//!   node's renewals alike, does not make the nodes take each other over.
//! - A node that finds its lease taken over (it was paused or cut off longer than the lease)
//!   stops at once, without finishing anything: its work belongs to another node now.

pub mod forward;
pub mod route;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::AppState;

/// How this node takes part among nodes sharing a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The URL other nodes reach this node's API at; `None`: `http://` + the listening
    /// address.
    pub node_url: Option<String>,
    /// How long a node that stops renewing its lease keeps its work before another node takes
    /// it over.
    pub lease: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_url: None,
            lease: Duration::from_secs(15),
        }
    }
}

/// This node's lease, as it is held.
pub struct Membership {
    /// Where other nodes reach this node.
    pub url: String,
    /// How long the lease lasts.
    pub lease: Duration,
    epoch: AtomicI64,
    /// Since when (Unix ms) the renewals have all succeeded; `None`: the last one failed.
    in_touch_since: Mutex<Option<i64>>,
}

impl Membership {
    /// A membership not yet registered.
    pub fn new(url: String, lease: Duration) -> Self {
        Self {
            url,
            lease,
            epoch: AtomicI64::new(0),
            in_touch_since: Mutex::new(None),
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// The epoch this node holds its lease under.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn touched(&self, ok: bool, now_ms: i64) -> Option<i64> {
        let mut since = self
            .in_touch_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (ok, *since) {
            (true, None) => *since = Some(now_ms),
            (false, _) => *since = None,
            _ => {}
        }
        *since
    }
}

/// Registers this node (a new epoch, a fresh lease).
pub async fn join(app: &AppState) -> Result<(), convrec_store::metadata::MetadataError> {
    let now = crate::now_ms();
    let cluster = &app.cluster;
    let epoch = app
        .metadata
        .register_node(&app.node_id, &cluster.url, now, cluster.lease_ms())
        .await?;
    cluster.epoch.store(epoch, Ordering::SeqCst);
    cluster.touched(true, now);
    tracing::info!(node = %app.node_id, epoch, url = %cluster.url, "joined the nodes sharing the database");
    Ok(())
}

/// Leaves: the conversations this node hosted are free and its lease ends (a stopping node,
/// once its recordings are finished).
pub async fn leave(app: &AppState) {
    if let Err(e) = app
        .metadata
        .leave_node(&app.node_id, app.cluster.epoch())
        .await
    {
        tracing::warn!(error = %e, "cannot give up this node's lease; other nodes take it over when it runs out");
    }
}

/// Renews the lease and takes lost nodes over until the lease is found taken over, which it
/// returns as an error (the node must stop).
pub async fn run(app: AppState) -> LeaseLost {
    let cluster = &app.cluster;
    let period = cluster.lease / 4;
    loop {
        tokio::time::sleep(period).await;
        let now = crate::now_ms();
        let renewed = app
            .metadata
            .renew_node_lease(&app.node_id, cluster.epoch(), now, cluster.lease_ms())
            .await;
        let in_touch_since = match renewed {
            Ok(true) => cluster.touched(true, now),
            Ok(false) => {
                tracing::error!(node = %app.node_id, "this node's lease was taken over by another node; stopping at once");
                return LeaseLost;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew this node's lease");
                cluster.touched(false, now)
            }
        };
        if in_touch_since.is_some_and(|since| now - since >= cluster.lease_ms()) {
            take_over_lost_nodes(&app, now).await;
        }
    }
}

/// This node's lease was taken over by another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this node's lease was taken over by another node (it was cut off from the database for longer than the lease)"
)]
pub struct LeaseLost;

async fn take_over_lost_nodes(app: &AppState, now: i64) {
    let lost = match app.metadata.lost_nodes(now).await {
        Ok(lost) => lost,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for lost nodes");
            return;
        }
    };
    for node in lost {
        match app.metadata.take_over_node(&node, now).await {
            Ok(true) => {
                tracing::warn!(lost = %node.node_id, "a node stopped renewing its lease; taking it over");
                if let Err(e) = crate::recording::take_over(app, &node.node_id).await {
                    tracing::error!(lost = %node.node_id, error = %e, "cannot take a lost node over; retrying at the next round");
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lost = %node.node_id, error = %e, "cannot take a lost node over")
            }
        }
    }
}
