//! Server nodes sharing one database: each holds a lease it renews; a conversation's live state
//! is hosted by one node, and requests for it are routed there; a recording is run by one node.
//! When a node's lease runs out another node takes it over (ends its calls, finishes its
//! recordings); the epoch a takeover bumps tells the old node, should it wake, that its work is
//! gone.

use super::{Metadata, MetadataError, Pool, hash, with_pool};
use sqlx::Row;

/// Where a request for a conversation (or a recorder's entry point) is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On the node that asks (it hosts the conversation, or nobody does).
    Here,
    /// On another node, whose lease holds.
    Node {
        /// Its name.
        node_id: String,
        /// Where its API is reached.
        url: String,
    },
    /// On a node whose lease ran out: it is being taken over.
    Lost {
        /// Its name.
        node_id: String,
    },
}

/// A node whose lease ran out, as it was when seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLease {
    /// Its name.
    pub node_id: String,
    /// Its epoch (a takeover must name it, so that only one takeover of it succeeds).
    pub epoch: i64,
}

impl Metadata {
    /// Registers a starting node reachable at `url` with a lease of `lease_ms`; returns its
    /// new epoch (which its renewals must name).
    pub async fn register_node(
        &self,
        node_id: &str,
        url: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<i64, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "INSERT INTO nodes (node_id, url, epoch, lease_expires_at_ms, started_at_ms) \
                 VALUES ($1, $2, 1, $3, $4) \
                 ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, epoch = nodes.epoch + 1, \
                   lease_expires_at_ms = excluded.lease_expires_at_ms, started_at_ms = excluded.started_at_ms \
                 RETURNING epoch",
            )
            .bind(node_id)
            .bind(url)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get::<i64, _>("epoch")?)
        })
    }

    /// Renews a node's lease; `false`: the node was taken over (its epoch moved on) and must
    /// stop.
    pub async fn renew_node_lease(
        &self,
        node_id: &str,
        epoch: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE nodes SET lease_expires_at_ms = $1 WHERE node_id = $2 AND epoch = $3",
            )
            .bind(now_ms.saturating_add(lease_ms))
            .bind(node_id)
            .bind(epoch)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// A node stops: the conversations it hosted are free, and its lease ends now.
    pub async fn leave_node(&self, node_id: &str, epoch: i64) -> Result<(), MetadataError> {
        self.release_conversation_hosts(node_id).await?;
        with_pool!(self, pool => {
            sqlx::query("UPDATE nodes SET lease_expires_at_ms = 0 WHERE node_id = $1 AND epoch = $2")
                .bind(node_id)
                .bind(epoch)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Nodes whose lease ran out before `now_ms` and that still host a conversation or own an
    /// unfinished recording.
    pub async fn lost_nodes(&self, now_ms: i64) -> Result<Vec<NodeLease>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT node_id, epoch FROM nodes n WHERE lease_expires_at_ms < $1 AND ( \
                   EXISTS (SELECT 1 FROM conversations c WHERE c.host_node = n.node_id) \
                   OR EXISTS (SELECT 1 FROM recordings r WHERE r.node_id = n.node_id \
                     AND (r.ended_at_ms IS NULL OR (r.status <> 'COMPLETE' AND r.started_at_ms IS NOT NULL)))) \
                 ORDER BY node_id",
            )
            .bind(now_ms)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(NodeLease {
                        node_id: r.try_get("node_id")?,
                        epoch: r.try_get("epoch")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(MetadataError::from)
        })
    }

    /// Takes over a lost node: succeeds for one caller only, while the node's epoch is still
    /// `lost.epoch` and its lease still out.
    pub async fn take_over_node(
        &self,
        lost: &NodeLease,
        now_ms: i64,
    ) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE nodes SET epoch = epoch + 1 \
                 WHERE node_id = $1 AND epoch = $2 AND lease_expires_at_ms < $3",
            )
            .bind(&lost.node_id)
            .bind(lost.epoch)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Where requests for a conversation go, as seen by node `me`; a conversation nobody hosts
    /// becomes `me`'s. An unknown conversation is `Here` (the handler answers 404).
    pub async fn conversation_route(
        &self,
        conversation_id: &str,
        me: &str,
        now_ms: i64,
    ) -> Result<Route, MetadataError> {
        let lookup = "SELECT c.host_node, n.url, n.lease_expires_at_ms FROM conversations c \
                      LEFT JOIN nodes n ON n.node_id = c.host_node WHERE c.id = $1";
        with_pool!(self, pool => {
            let mut found = sqlx::query(lookup).bind(conversation_id).fetch_optional(pool).await?;
            let host: Option<Option<String>> =
                found.as_ref().map(|r| r.try_get("host_node")).transpose()?;
            if host == Some(None) {
                // Of two nodes claiming at once, one wins; the other reads the winner.
                sqlx::query("UPDATE conversations SET host_node = $1 WHERE id = $2 AND host_node IS NULL")
                    .bind(me)
                    .bind(conversation_id)
                    .execute(pool)
                    .await?;
                found = sqlx::query(lookup).bind(conversation_id).fetch_optional(pool).await?;
            }
            let Some(row) = found else {
                return Ok(Route::Here);
            };
            Ok(route_of(
                row.try_get("host_node")?,
                row.try_get("url")?,
                row.try_get("lease_expires_at_ms")?,
                me,
                now_ms,
            ))
        })
    }

    /// Where a recorder's entry point is served: on the node that runs its recording. The token
    /// is only looked at, not redeemed. An unknown token is `Here` (the handler refuses it).
    pub async fn entry_point_route(
        &self,
        token: &str,
        me: &str,
        now_ms: i64,
    ) -> Result<Route, MetadataError> {
        with_pool!(self, pool => {
            let found = sqlx::query(
                "SELECT r.node_id AS host_node, n.url, n.lease_expires_at_ms FROM entry_points e \
                 JOIN recordings r ON r.id = e.recording_id \
                 LEFT JOIN nodes n ON n.node_id = r.node_id WHERE e.token_hash = $1",
            )
            .bind(hash(token))
            .fetch_optional(pool)
            .await?;
            let Some(row) = found else {
                return Ok(Route::Here);
            };
            Ok(route_of(
                row.try_get("host_node")?,
                row.try_get("url")?,
                row.try_get("lease_expires_at_ms")?,
                me,
                now_ms,
            ))
        })
    }

    /// Frees the conversations `node_id` hosts; returns how many.
    pub async fn release_conversation_hosts(&self, node_id: &str) -> Result<u64, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query("UPDATE conversations SET host_node = NULL WHERE host_node = $1")
                .bind(node_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// The secret `name` all nodes share: the one kept, or `candidate` if none was (which is
    /// then kept). Hex-encoded.
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .execute(pool)
                .await?;
            let row = sqlx::query("SELECT value FROM shared_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<String, _>("value")?)
        })
    }

    /// Hands an unfinished recording of node `from` to node `to`; `false`: it was not `from`'s
    /// (any more).
    pub async fn move_recording(
        &self,
        recording_id: &str,
        from: &str,
        to: &str,
    ) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query("UPDATE recordings SET node_id = $1 WHERE id = $2 AND node_id = $3")
                .bind(to)
                .bind(recording_id)
                .bind(from)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Hands back to node `me` a recording whose spool `me` holds and that another node took
    /// over without finishing: not complete, and not one part of its files reached the object
    /// store (so nothing else can finish it). `false`: it is not such a recording.
    pub async fn take_back_recording(
        &self,
        recording_id: &str,
        me: &str,
    ) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE recordings SET node_id = $1 \
                 WHERE id = $2 AND node_id <> $1 AND status <> 'COMPLETE' \
                 AND NOT EXISTS (SELECT 1 FROM file_upload_parts p WHERE p.recording_id = $2)",
            )
            .bind(me)
            .bind(recording_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

fn route_of(
    host: Option<String>,
    url: Option<String>,
    lease_expires_at_ms: Option<i64>,
    me: &str,
    now_ms: i64,
) -> Route {
    match (host, url, lease_expires_at_ms) {
        (None, _, _) => Route::Here,
        (Some(node), _, _) if node == me => Route::Here,
        (Some(node_id), Some(url), Some(lease)) if lease >= now_ms => Route::Node { node_id, url },
        (Some(node_id), _, _) => Route::Lost { node_id },
    }
}
