//! Metadata: accounts, conversations, participants, interactions, publications, recordings and
//! their files, recorder entry points, API keys and chat messages, in SQLite (the embedded
//! default) or PostgreSQL through sqlx, with the schema in versioned migrations of each dialect
//! (`crates/store/migrations/{sqlite,postgres}`, kept to the same tables, columns and meaning).
//!
//! Every query is written once, in SQL both dialects read (`$n` parameters, `CASE` rather
//! than two-argument `MIN`, `ON CONFLICT`), and [`with_pool!`] runs it on whichever pool is
//! open. Tables whose rows are listed in insertion order have a `rowid` in both (SQLite's own;
//! an identity column in PostgreSQL).
//!
//! Secrets (participant tokens, entry-point tokens) are random 256-bit values handed out once
//! and stored only as SHA-256 hashes. Times are Unix milliseconds, passed in by the caller.

use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

mod api_keys;
mod history;
mod nodes;
mod uploads;

pub use api_keys::{ApiKey, KeyRole};
pub use history::{Interaction, Message, PageCursor, Sender};
pub use nodes::{NodeLease, Route};
pub use uploads::{FileUpload, UploadedPart};

/// The migrations, embedded in the binary.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The open database.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever it is: the body is compiled once
/// per database, so its rows and results have that database's concrete types.
macro_rules! with_pool {
    ($self:ident, $pool:ident => $body:block) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Reads a column of either database's rows (for the functions that turn rows into values).
trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
}

macro_rules! columns_of {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn integer(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
columns_of!(sqlx::sqlite::SqliteRow);
columns_of!(sqlx::postgres::PgRow);

/// Why a metadata operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The change would break a rule of the model.
    #[error("{0}")]
    Conflict(String),
    /// An object that must exist does not.
    #[error("no {what} with id {id}")]
    NotFound {
        /// Which kind of object.
        what: &'static str,
        /// Its id.
        id: String,
    },
}

impl MetadataError {
    /// Whether the database could not be reached or could not serve just now (connections
    /// refused or cut, the pool's wait running out, the server shutting down or full, SQLite
    /// busy): trying the same request again later may succeed, unlike a refusal or a fault
    /// (a TLS failure is left out: it is more often a certificate than a moment).
    pub fn is_unavailable(&self) -> bool {
        let MetadataError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => {
                let Some(code) = e.code() else {
                    return false;
                };
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    sqlite_busy(&code)
                } else {
                    postgres_unavailable(&code)
                }
            }
            _ => false,
        }
    }
}

/// PostgreSQL's codes for "not now" rather than "not this": a connection exception (class
/// 08), too many connections (53300), the server shutting down or starting (57P01–57P03).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "53300" | "57P01" | "57P02" | "57P03")
}

/// SQLite's BUSY (5) and LOCKED (6), with their extended codes (the primary code is the low
/// byte).
fn sqlite_busy(extended_code: &str) -> bool {
    extended_code
        .parse::<i32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// Why an entry point was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EntryPointRefusal {
    /// No such token.
    #[error("unknown entry point")]
    Unknown,
    /// The token was used already.
    #[error("entry point already used")]
    Used,
    /// The token expired.
    #[error("entry point expired")]
    Expired,
}

/// A secret shown once. Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    fn random() -> Self {
        Secret(hex(&random_bytes::<32>()))
    }

    /// The secret itself, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A participant's role (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The agent the conversation is assigned to.
    AssignedAgent,
    /// Another agent.
    SecondaryAgent,
    /// A visitor (customer).
    Visitor,
}

impl Role {
    /// As in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AssignedAgent => "ASSIGNED_AGENT",
            Role::SecondaryAgent => "SECONDARY_AGENT",
            Role::Visitor => "VISITOR",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ASSIGNED_AGENT" => Ok(Role::AssignedAgent),
            "SECONDARY_AGENT" => Ok(Role::SecondaryAgent),
            "VISITOR" => Ok(Role::Visitor),
            other => Err(format!(
                "'{other}' is not a role; allowed: ASSIGNED_AGENT, SECONDARY_AGENT, VISITOR"
            )),
        }
    }
}

/// A participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A redeemed entry point: which recording attempt it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// The recording.
    pub recording_id: String,
    /// The attempt (1-based).
    pub attempt: u32,
}

/// The metadata store. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: Pool,
}

impl Metadata {
    /// Opens the database `url` names and brings its schema up to date: `postgres://…` (or
    /// `postgresql://…`) for PostgreSQL, `sqlite://PATH` or a plain path for SQLite.
    pub async fn open(url: &str) -> Result<Self, MetadataError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else {
            Self::open_sqlite(Path::new(url.strip_prefix("sqlite://").unwrap_or(url))).await
        }
    }

    /// Connects to PostgreSQL at `url` and brings its schema up to date. Writes are durable
    /// when they return (PostgreSQL's own commit).
    pub async fn open_postgres(url: &str) -> Result<Self, MetadataError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        POSTGRES_MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool: Pool::Postgres(pool),
        })
    }

    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to
    /// date. Writes are durable when they return (WAL, `synchronous = FULL`).
    pub async fn open_sqlite(path: &Path) -> Result<Self, MetadataError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    /// How many recordings there are in each status (`INITIALIZING`, `PENDING`, `COMPLETE`),
    /// for the metrics.
    pub async fn recordings_by_status(&self) -> Result<Vec<(String, i64)>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM recordings GROUP BY status")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("n")))
                .collect())
        })
    }

    /// Webhook messages waiting to be delivered (the queue's depth, for the metrics).
    pub async fn webhook_queue_depth(&self) -> Result<i64, MetadataError> {
        with_pool!(self, pool => {
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE state = 'PENDING'")
                .fetch_one(pool)
                .await?;
            Ok(n)
        })
    }

    /// Creates an account; returns its id.
    pub async fn create_account(&self, name: &str, now_ms: i64) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("acc");
            sqlx::query("INSERT INTO accounts (id, name, created_at_ms) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(name)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(id)
        })
    }

    /// Creates a conversation in an account (with its template, checked by the caller to be
    /// the account's); returns its id.
    pub async fn create_conversation(
        &self,
        account_id: &str,
        template_id: Option<&str>,
        topic: &str,
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("conv");
            let result = sqlx::query(
                "INSERT INTO conversations (id, account_id, template_id, topic, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&id)
            .bind(account_id)
            .bind(template_id)
            .bind(topic)
            .bind(now_ms)
            .execute(pool)
            .await;
            parent_must_exist(result, "account", account_id).map(|()| id)
        })
    }

    /// Adds a participant; returns it and its token (shown once).
    pub async fn add_participant(
        &self,
        conversation_id: &str,
        name: &str,
        role: Role,
        now_ms: i64,
    ) -> Result<(Participant, Secret), MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("part");
            let token = Secret::random();
            let result = sqlx::query(
                "INSERT INTO participants (id, conversation_id, name, role, token_hash, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(conversation_id)
            .bind(name)
            .bind(role.as_str())
            .bind(hash(token.expose()))
            .bind(now_ms)
            .execute(pool)
            .await;
            parent_must_exist(result, "conversation", conversation_id)?;
            let participant = Participant {
                id,
                conversation_id: conversation_id.to_owned(),
                name: name.to_owned(),
                role,
            };
            Ok((participant, token))
        })
    }

    /// The participant a token belongs to.
    pub async fn participant_by_token(
        &self,
        token: &str,
    ) -> Result<Option<Participant>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, conversation_id, name, role FROM participants WHERE token_hash = $1",
            )
            .bind(hash(token))
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(participant_from_row).transpose()?)
        })
    }

    /// Creates a recording in `INITIALIZING`, run by node `node_id`; returns its id. Refused (`Conflict`) while another
    /// recording of the conversation has not ended.
    pub async fn create_recording(
        &self,
        conversation_id: &str,
        recording_type: &str,
        layout: &str,
        trigger: &str,
        node_id: &str,
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("rec");
            let result = sqlx::query(
                "INSERT INTO recordings (id, conversation_id, recording_type, layout, trigger, status, node_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'INITIALIZING', $6, $7)",
            )
            .bind(&id)
            .bind(conversation_id)
            .bind(recording_type)
            .bind(layout)
            .bind(trigger)
            .bind(node_id)
            .bind(now_ms)
            .execute(pool)
            .await;
            match result {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(MetadataError::Conflict(format!(
                        "a recording of conversation {conversation_id} is still running"
                    )))
                }
                other => other.map(|_| id).map_err(MetadataError::from),
            }
        })
    }

    /// Ends a recording with its end reason (SPEC §5).
    pub async fn end_recording(
        &self,
        recording_id: &str,
        end_reason: &str,
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query("UPDATE recordings SET ended_at_ms = $1, end_reason = $2 WHERE id = $3 AND ended_at_ms IS NULL")
                .bind(now_ms)
                .bind(end_reason)
                .bind(recording_id)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(MetadataError::NotFound {
                    what: "running recording",
                    id: recording_id.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// Makes a single-use entry point for one attempt of a recording, valid for `ttl_ms`. The
    /// recording's earlier entry points that were not used expire at once: only one recorder
    /// may join an attempt, and only the newest attempt may be joined.
    pub async fn create_entry_point(
        &self,
        recording_id: &str,
        attempt: u32,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Secret, MetadataError> {
        with_pool!(self, pool => {
            let token = Secret::random();
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE entry_points SET expires_at_ms = CASE WHEN expires_at_ms < $1 THEN expires_at_ms ELSE $1 END WHERE recording_id = $2 AND used_at_ms IS NULL")
                .bind(now_ms)
                .bind(recording_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO entry_points (token_hash, recording_id, attempt, expires_at_ms) VALUES ($1, $2, $3, $4)")
                .bind(hash(token.expose()))
                .bind(recording_id)
                .bind(i64::from(attempt))
                .bind(now_ms.saturating_add(ttl_ms))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(token)
        })
    }

    /// Redeems an entry point: succeeds once, before it expires, atomically.
    pub async fn redeem_entry_point(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Result<EntryPoint, EntryPointRefusal>, MetadataError> {
        with_pool!(self, pool => {
            let token_hash = hash(token);
            let redeemed = sqlx::query(
                "UPDATE entry_points SET used_at_ms = $1 \
                 WHERE token_hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $3 \
                 RETURNING recording_id, attempt",
            )
            .bind(now_ms)
            .bind(&token_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
            if let Some(row) = redeemed {
                return Ok(Ok(EntryPoint {
                    recording_id: row.try_get("recording_id")?,
                    attempt: small(row.try_get("attempt")?)?,
                }));
            }
            let known = sqlx::query("SELECT used_at_ms FROM entry_points WHERE token_hash = $1")
                .bind(&token_hash)
                .fetch_optional(pool)
                .await?;
            Ok(Err(match known {
                None => EntryPointRefusal::Unknown,
                Some(row) if row.try_get::<Option<i64>, _>("used_at_ms")?.is_some() => {
                    EntryPointRefusal::Used
                }
                Some(_) => EntryPointRefusal::Expired,
            }))
        })
    }

    /// Deletes a conversation and, with it, its participants, interactions, recordings, files
    /// and entry points (the stored bytes are the caller's to delete).
    pub async fn delete_conversation(&self, conversation_id: &str) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(MetadataError::NotFound {
                    what: "conversation",
                    id: conversation_id.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// Rows in a table (tests and operations).
    pub async fn count(&self, table: Table) -> Result<i64, MetadataError> {
        with_pool!(self, pool => {
            Ok(sqlx::query(table.count_sql())
                .fetch_one(pool)
                .await?
                .try_get(0)?)
        })
    }
}

/// An account (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
}

/// A conversation template (named defaults, the TEMPLATE configuration scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// Its name.
    pub name: String,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// Its template.
    pub template_id: Option<String>,
    /// Its topic.
    pub topic: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
}

/// A recording as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// `AUDIO` or `AUDIO_VIDEO`.
    pub recording_type: String,
    /// `COMPOSED` or `RAW_TRACKS`.
    pub layout: String,
    /// `AUTOMATIC` or `MANUAL`.
    pub trigger: String,
    /// `INITIALIZING`, `PENDING` or `COMPLETE`.
    pub status: String,
    /// When its first fragment was made durable (Unix ms).
    pub started_at_ms: Option<i64>,
    /// When it ended (Unix ms).
    pub ended_at_ms: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<String>,
}

/// One file of a recording and how much of it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    /// Its recording.
    pub recording_id: String,
    /// Its number within the recording.
    pub file: u32,
    /// The publication it records (raw mode).
    pub publication_id: Option<String>,
    /// Where the object store keeps it.
    pub object_key: String,
    /// Bytes made durable (acknowledged).
    pub durable_bytes: u64,
    /// Blocks made durable.
    pub blocks: u64,
    /// Its index was written.
    pub finished: bool,
    /// When its publication's recording began (Unix ms).
    pub started_at_ms: i64,
    /// The key it is sealed for (hex SHA-256 of the public key's SubjectPublicKeyInfo); `None`
    /// when it is stored as recorded.
    pub encryption_key_id: Option<String>,
}

/// Calls, collaboration layers, publications, recordings and their files, and configuration.
impl Metadata {
    /// An account.
    pub async fn account(&self, id: &str) -> Result<Option<Account>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT id, name, created_at_ms FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(row
                .map(|r| -> Result<Account, sqlx::Error> {
                    Ok(Account {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        created_at_ms: r.try_get("created_at_ms")?,
                    })
                })
                .transpose()?)
        })
    }

    /// A conversation.
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, account_id, template_id, topic, created_at_ms FROM conversations WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(conversation_from_row).transpose()?)
        })
    }

    /// Creates a template in an account; returns its id.
    pub async fn create_template(
        &self,
        account_id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("tpl");
            let result = sqlx::query(
                "INSERT INTO templates (id, account_id, name, created_at_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(account_id)
            .bind(name)
            .bind(now_ms)
            .execute(pool)
            .await;
            parent_must_exist(result, "account", account_id).map(|()| id)
        })
    }

    /// A template.
    pub async fn template(&self, id: &str) -> Result<Option<Template>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT id, account_id, name FROM templates WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(row
                .map(|r| -> Result<Template, sqlx::Error> {
                    Ok(Template {
                        id: r.try_get("id")?,
                        account_id: r.try_get("account_id")?,
                        name: r.try_get("name")?,
                    })
                })
                .transpose()?)
        })
    }

    /// The properties set in a scope (`ACCOUNT` or `TEMPLATE`) of one account or template:
    /// (short name, JSON value).
    pub async fn properties(
        &self,
        scope: &str,
        scope_id: &str,
    ) -> Result<Vec<(String, String)>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT property, value FROM configuration WHERE scope = $1 AND scope_id = $2 ORDER BY property",
            )
            .bind(scope)
            .bind(scope_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| Ok((r.try_get("property")?, r.try_get("value")?)))
                .collect::<Result<_, sqlx::Error>>()?)
        })
    }

    /// Sets properties in a scope of one account or template, all or none; a `null` value
    /// removes the property from the scope.
    pub async fn set_properties(
        &self,
        scope: &str,
        scope_id: &str,
        properties: &[(String, String)],
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (property, value) in properties {
                if value == "null" {
                    sqlx::query(
                        "DELETE FROM configuration WHERE scope = $1 AND scope_id = $2 AND property = $3",
                    )
                    .bind(scope)
                    .bind(scope_id)
                    .bind(property)
                    .execute(&mut *tx)
                    .await?;
                    continue;
                }
                sqlx::query(
                    "INSERT INTO configuration (scope, scope_id, property, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (scope, scope_id, property) DO UPDATE SET value = excluded.value",
                )
                .bind(scope)
                .bind(scope_id)
                .bind(property)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A new id for a call (`source` `CALL`) or collaboration layer.
    pub fn new_interaction_id(source: &str) -> String {
        new_id(if source == "CALL" { "call" } else { "layer" })
    }

    /// Records a call or collaboration layer that started, with an id from
    /// [`Metadata::new_interaction_id`].
    pub async fn create_interaction(
        &self,
        id: &str,
        conversation_id: &str,
        source: &str,
        kind: &str,
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO interactions (id, conversation_id, source, type, started_at_ms) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(conversation_id)
                .bind(source)
                .bind(kind)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Deletes an interaction that never started (it lost a race to another).
    pub async fn delete_interaction(&self, id: &str) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM interactions WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Ends an interaction (once; later calls change nothing).
    pub async fn end_interaction(&self, id: &str, now_ms: i64) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE interactions SET ended_at_ms = $1 WHERE id = $2 AND ended_at_ms IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Records a publication; returns its id.
    pub async fn create_publication(
        &self,
        interaction_id: &str,
        participant_id: &str,
        audio: bool,
        video: bool,
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("pub");
            sqlx::query("INSERT INTO publications (id, interaction_id, participant_id, audio, video, started_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&id)
                .bind(interaction_id)
                .bind(participant_id)
                .bind(audio)
                .bind(video)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(id)
        })
    }

    /// Ends a publication (once).
    pub async fn end_publication(&self, id: &str, now_ms: i64) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE publications SET ended_at_ms = $1 WHERE id = $2 AND ended_at_ms IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A recording.
    pub async fn recording(&self, id: &str) -> Result<Option<Recording>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, conversation_id, recording_type, layout, trigger, status, started_at_ms, ended_at_ms, end_reason \
                 FROM recordings WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(row
                .map(|r| -> Result<Recording, sqlx::Error> {
                    Ok(Recording {
                        id: r.try_get("id")?,
                        conversation_id: r.try_get("conversation_id")?,
                        recording_type: r.try_get("recording_type")?,
                        layout: r.try_get("layout")?,
                        trigger: r.try_get("trigger")?,
                        status: r.try_get("status")?,
                        started_at_ms: r.try_get("started_at_ms")?,
                        ended_at_ms: r.try_get("ended_at_ms")?,
                        end_reason: r.try_get("end_reason")?,
                    })
                })
                .transpose()?)
        })
    }

    /// How many recordings of the same account as recording `id` are running (not ended) and
    /// were created before it: the queue a per-account limit admits recordings from, oldest
    /// first, so one that waits for a place keeps it against newer ones.
    pub async fn running_recordings_ahead_of(&self, id: &str) -> Result<u64, MetadataError> {
        with_pool!(self, pool => {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM recordings r \
                 JOIN conversations c ON c.id = r.conversation_id \
                 JOIN recordings me ON me.id = $1 \
                 JOIN conversations mine ON mine.id = me.conversation_id \
                 WHERE c.account_id = mine.account_id AND r.ended_at_ms IS NULL AND r.id <> me.id \
                 AND (r.created_at_ms < me.created_at_ms \
                      OR (r.created_at_ms = me.created_at_ms AND r.id < me.id))",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    /// Marks the moment a recording's first fragment became durable (once).
    pub async fn mark_recording_started(&self, id: &str, now_ms: i64) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE recordings SET started_at_ms = $1 WHERE id = $2 AND started_at_ms IS NULL",
            )
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Sets a recording's status (`INITIALIZING`, `PENDING`, `COMPLETE`).
    pub async fn set_recording_status(&self, id: &str, status: &str) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE recordings SET status = $1 WHERE id = $2")
                .bind(status)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Registers a file of a recording.
    pub async fn add_recording_file(&self, file: &RecordingFile) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO recording_files (recording_id, file, publication_id, object_key, durable_bytes, blocks, finished, started_at_ms, encryption_key_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&file.recording_id)
            .bind(i64::from(file.file))
            .bind(&file.publication_id)
            .bind(&file.object_key)
            .bind(i64::try_from(file.durable_bytes).unwrap_or(i64::MAX))
            .bind(i64::try_from(file.blocks).unwrap_or(i64::MAX))
            .bind(file.finished)
            .bind(file.started_at_ms)
            .bind(&file.encryption_key_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Records how much of a file is durable.
    pub async fn set_file_durable(
        &self,
        recording_id: &str,
        file: u32,
        durable_bytes: u64,
        blocks: u64,
        finished: bool,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE recording_files SET durable_bytes = $1, blocks = $2, finished = $3 WHERE recording_id = $4 AND file = $5",
            )
            .bind(i64::try_from(durable_bytes).unwrap_or(i64::MAX))
            .bind(i64::try_from(blocks).unwrap_or(i64::MAX))
            .bind(finished)
            .bind(recording_id)
            .bind(i64::from(file))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The files of a recording, in order.
    pub async fn recording_files(
        &self,
        recording_id: &str,
    ) -> Result<Vec<RecordingFile>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT recording_id, file, publication_id, object_key, durable_bytes, blocks, finished, started_at_ms, encryption_key_id \
                 FROM recording_files WHERE recording_id = $1 ORDER BY file",
            )
            .bind(recording_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| -> Result<RecordingFile, sqlx::Error> {
                    Ok(RecordingFile {
                        recording_id: r.try_get("recording_id")?,
                        file: small(r.try_get("file")?)?,
                        publication_id: r.try_get("publication_id")?,
                        object_key: r.try_get("object_key")?,
                        durable_bytes: u64::try_from(r.try_get::<i64, _>("durable_bytes")?)
                            .unwrap_or(0),
                        blocks: u64::try_from(r.try_get::<i64, _>("blocks")?).unwrap_or(0),
                        finished: r.try_get("finished")?,
                        started_at_ms: r.try_get("started_at_ms")?,
                        encryption_key_id: r.try_get("encryption_key_id")?,
                    })
                })
                .collect::<Result<_, _>>()?)
        })
    }

    /// Recordings of node `node_id` (or of no node: made before nodes were kept) that a restart
    /// or a takeover must finish: those that have not ended, and those that ended with media
    /// whose files were not all stored (a crash during the hand-off).
    pub async fn unfinished_recordings(
        &self,
        node_id: &str,
    ) -> Result<Vec<Recording>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id FROM recordings WHERE (node_id = $1 OR node_id IS NULL) \
                 AND (ended_at_ms IS NULL OR (status <> 'COMPLETE' AND started_at_ms IS NOT NULL)) \
                 ORDER BY created_at_ms",
            )
            .bind(node_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::new();
            for row in rows {
                let id: String = row.try_get("id")?;
                if let Some(r) = self.recording(&id).await? {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Ends every interaction and publication still open in the conversations lost node
    /// `node_id` hosts; their media sessions died with it. Nobody hosts them after. Returns how
    /// many interactions were ended.
    pub async fn end_open_interactions(
        &self,
        node_id: &str,
        now_ms: i64,
    ) -> Result<u64, MetadataError> {
        self.end_interactions_of(node_id, false, now_ms).await
    }

    /// As [`end_open_interactions`](Self::end_open_interactions) for a node that restarted,
    /// and also for conversations nobody hosts (left open before nodes were kept).
    pub async fn end_open_interactions_after_restart(
        &self,
        node_id: &str,
        now_ms: i64,
    ) -> Result<u64, MetadataError> {
        self.end_interactions_of(node_id, true, now_ms).await
    }

    async fn end_interactions_of(
        &self,
        node_id: &str,
        unhosted_too: bool,
        now_ms: i64,
    ) -> Result<u64, MetadataError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE publications SET ended_at_ms = $1 WHERE ended_at_ms IS NULL AND interaction_id IN \
                 (SELECT id FROM interactions WHERE conversation_id IN \
                   (SELECT id FROM conversations WHERE host_node = $2 OR ($3 AND host_node IS NULL)))",
            )
            .bind(now_ms)
            .bind(node_id)
            .bind(unhosted_too)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query(
                "UPDATE interactions SET ended_at_ms = $1 WHERE ended_at_ms IS NULL AND conversation_id IN \
                 (SELECT id FROM conversations WHERE host_node = $2 OR ($3 AND host_node IS NULL))",
            )
            .bind(now_ms)
            .bind(node_id)
            .bind(unhosted_too)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE conversations SET host_node = NULL WHERE host_node = $1")
                .bind(node_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }

    /// The ids of a conversation's recordings, oldest first.
    pub async fn recording_ids(&self, conversation_id: &str) -> Result<Vec<String>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id FROM recordings WHERE conversation_id = $1 ORDER BY created_at_ms, id",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?)
        })
    }
}

/// A webhook registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// Its account.
    pub account_id: String,
    /// Where events are sent.
    pub endpoint: String,
    /// The Standard Webhooks secret (`whsec_…`).
    pub secret: String,
    /// The event names it wants.
    pub events: Vec<String>,
}

/// A message due for delivery, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMessage {
    /// Its id (the `webhook-id` header).
    pub id: String,
    /// The event name.
    pub event_type: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Where it goes.
    pub endpoint: String,
    /// The secret to sign it with.
    pub secret: String,
}

/// One delivery attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The message (`webhook-id`).
    pub message_id: String,
    /// The event name.
    pub event_type: String,
    /// Its number, from 1.
    pub attempt: u32,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// What went wrong otherwise.
    pub error: Option<String>,
    /// The message's state now: `PENDING`, `DELIVERED` or `FAILED`.
    pub message_state: String,
}

/// Which registrations to read.
#[derive(Debug, Clone, Copy)]
enum WebhookFilter {
    /// One, by id.
    Id,
    /// An account's.
    Account,
}

/// Webhook registrations and their durable delivery queue.
impl Metadata {
    /// Registers a webhook; returns its id.
    pub async fn create_webhook(
        &self,
        account_id: &str,
        endpoint: &str,
        secret: &str,
        events: &[String],
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("wh");
            let events = serde_json::to_string(events).unwrap_or_else(|_| "[]".into());
            let result = sqlx::query(
                "INSERT INTO webhooks (id, account_id, endpoint, secret, events, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(account_id)
            .bind(endpoint)
            .bind(secret)
            .bind(events)
            .bind(now_ms)
            .execute(pool)
            .await;
            parent_must_exist(result, "account", account_id).map(|()| id)
        })
    }

    /// A registration.
    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, MetadataError> {
        let rows = self.webhooks_where(WebhookFilter::Id, id).await?;
        Ok(rows.into_iter().next())
    }

    /// The registrations of an account that want `event_type`.
    pub async fn webhooks_for(
        &self,
        account_id: &str,
        event_type: &str,
    ) -> Result<Vec<Webhook>, MetadataError> {
        Ok(self
            .webhooks_where(WebhookFilter::Account, account_id)
            .await?
            .into_iter()
            .filter(|w| w.events.iter().any(|e| e == event_type))
            .collect())
    }

    async fn webhooks_where(
        &self,
        filter: WebhookFilter,
        value: &str,
    ) -> Result<Vec<Webhook>, MetadataError> {
        with_pool!(self, pool => {
            let sql = match filter {
                WebhookFilter::Id => {
                    "SELECT id, account_id, endpoint, secret, events FROM webhooks WHERE id = $1"
                }
                WebhookFilter::Account => {
                    "SELECT id, account_id, endpoint, secret, events FROM webhooks WHERE account_id = $1"
                }
            };
            let rows = sqlx::query(sql).bind(value).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    let events: String = r.try_get("events")?;
                    Ok(Webhook {
                        id: r.try_get("id")?,
                        account_id: r.try_get("account_id")?,
                        endpoint: r.try_get("endpoint")?,
                        secret: r.try_get("secret")?,
                        events: serde_json::from_str(&events).unwrap_or_default(),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(MetadataError::from)
        })
    }

    /// Removes a registration and its queue.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Queues one message for a registration, due at once; returns its id.
    pub async fn enqueue_webhook_message(
        &self,
        webhook_id: &str,
        event_type: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<String, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("msg");
            sqlx::query(
                "INSERT INTO webhook_messages (id, webhook_id, event_type, payload, created_at_ms, next_attempt_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(webhook_id)
            .bind(event_type)
            .bind(payload)
            .bind(now_ms)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(id)
        })
    }

    /// Claims for `node_id` up to `limit` messages whose next attempt is due, oldest first, for
    /// `lease_ms`: their next attempt moves to `now_ms + lease_ms`, so no other dispatcher
    /// (another node on the same database) sees them due meanwhile.
    /// [`Metadata::record_webhook_attempt`] then sets when they are due again; a dispatcher
    /// that dies holding a claim leaves its messages to be retried when the lease ends, or at
    /// once when its node restarts ([`Metadata::release_webhook_claims`]): at-least-once, never
    /// two at once.
    pub async fn claim_due_webhook_messages(
        &self,
        node_id: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueMessage>, MetadataError> {
        with_pool!(self, pool => {
            // The outer condition is checked again on each row as it is updated: of two
            // claims racing for a row, the second finds it not due any more.
            let rows = sqlx::query(
                "UPDATE webhook_messages SET next_attempt_at_ms = $1, claimed_by = $4 \
                 WHERE state = 'PENDING' AND next_attempt_at_ms <= $2 AND id IN ( \
                   SELECT id FROM webhook_messages WHERE state = 'PENDING' AND next_attempt_at_ms <= $2 \
                   ORDER BY next_attempt_at_ms, created_at_ms LIMIT $3) \
                 RETURNING id, event_type, payload, attempts, \
                   (SELECT endpoint FROM webhooks w WHERE w.id = webhook_id) AS endpoint, \
                   (SELECT secret FROM webhooks w WHERE w.id = webhook_id) AS secret",
            )
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .bind(i64::from(limit))
            .bind(node_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(DueMessage {
                        id: r.try_get("id")?,
                        event_type: r.try_get("event_type")?,
                        payload: r.try_get("payload")?,
                        attempts: small(r.try_get("attempts")?)?,
                        endpoint: r.try_get("endpoint")?,
                        secret: r.try_get("secret")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(MetadataError::from)
        })
    }

    /// Frees the claims `node_id` holds (it restarted: the deliveries it was making died with
    /// it); those messages are due at once. Returns how many there were.
    pub async fn release_webhook_claims(
        &self,
        node_id: &str,
        now_ms: i64,
    ) -> Result<u64, MetadataError> {
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE webhook_messages SET claimed_by = NULL, next_attempt_at_ms = $1 \
                 WHERE claimed_by = $2 AND state = 'PENDING'",
            )
            .bind(now_ms)
            .bind(node_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Logs an attempt and moves the message on: `DELIVERED`, `FAILED` (given up) or due again
    /// at `next_attempt_at_ms`.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_attempt(
        &self,
        message_id: &str,
        attempt: u32,
        now_ms: i64,
        status: Option<u16>,
        error: Option<&str>,
        state: &str,
        next_attempt_at_ms: i64,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO webhook_attempts (message_id, attempt, at_ms, status, error) VALUES ($1, $2, $3, $4, $5)")
                .bind(message_id)
                .bind(i64::from(attempt))
                .bind(now_ms)
                .bind(status.map(i64::from))
                .bind(error)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE webhook_messages SET attempts = $1, state = $2, next_attempt_at_ms = $3, claimed_by = NULL WHERE id = $4")
                .bind(i64::from(attempt))
                .bind(state)
                .bind(next_attempt_at_ms)
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every attempt for a registration, newest first.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.message_id, m.event_type, a.attempt, a.at_ms, a.status, a.error, m.state \
                 FROM webhook_attempts a JOIN webhook_messages m ON m.id = a.message_id \
                 WHERE m.webhook_id = $1 ORDER BY a.at_ms DESC, a.attempt DESC",
            )
            .bind(webhook_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(DeliveryAttempt {
                        message_id: r.try_get("message_id")?,
                        event_type: r.try_get("event_type")?,
                        attempt: small(r.try_get("attempt")?)?,
                        at_ms: r.try_get("at_ms")?,
                        status: r
                            .try_get::<Option<i64>, _>("status")?
                            .map(small)
                            .transpose()?,
                        error: r.try_get("error")?,
                        message_state: r.try_get("state")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(MetadataError::from)
        })
    }
}

/// Tables [`Metadata::count`] can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `participants`.
    Participants,
    /// `recordings`.
    Recordings,
    /// `entry_points`.
    EntryPoints,
}

impl Table {
    fn count_sql(self) -> &'static str {
        match self {
            Table::Participants => "SELECT COUNT(*) FROM participants",
            Table::Recordings => "SELECT COUNT(*) FROM recordings",
            Table::EntryPoints => "SELECT COUNT(*) FROM entry_points",
        }
    }
}

fn participant_from_row(r: &impl Columns) -> Result<Participant, sqlx::Error> {
    Ok(Participant {
        id: r.text("id")?,
        conversation_id: r.text("conversation_id")?,
        name: r.text("name")?,
        role: r
            .text("role")?
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
    })
}

fn conversation_from_row(r: &impl Columns) -> Result<Conversation, sqlx::Error> {
    Ok(Conversation {
        id: r.text("id")?,
        account_id: r.text("account_id")?,
        template_id: r.optional_text("template_id")?,
        topic: r.text("topic")?,
        created_at_ms: r.integer("created_at_ms")?,
    })
}

/// An insert's result, with a missing parent row (a foreign key) said as `NotFound`.
fn parent_must_exist(
    result: Result<impl Sized, sqlx::Error>,
    what: &'static str,
    id: &str,
) -> Result<(), MetadataError> {
    match result {
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(MetadataError::NotFound {
                what,
                id: id.to_owned(),
            })
        }
        other => other.map(|_| ()).map_err(MetadataError::from),
    }
}

/// A stored number that must fit the small unsigned type it was written from.
fn small<T: TryFrom<i64>>(value: i64) -> Result<T, sqlx::Error> {
    T::try_from(value).map_err(|_| sqlx::Error::Decode(format!("{value} is out of range").into()))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("bug: the operating system has no random source");
    bytes
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex(&random_bytes::<12>()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_now_is_told_from_not_this() {
        assert!(MetadataError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(MetadataError::Database(sqlx::Error::Io(refused)).is_unavailable());
        assert!(!MetadataError::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!MetadataError::Conflict("taken".into()).is_unavailable());
        // PostgreSQL: admin shutdown, connection failure; a unique violation is not.
        assert!(postgres_unavailable("57P01") && postgres_unavailable("08006"));
        assert!(!postgres_unavailable("23505"));
        // SQLite: BUSY, BUSY_SNAPSHOT (517), LOCKED_SHAREDCACHE (262); CONSTRAINT (19) is not.
        assert!(sqlite_busy("5") && sqlite_busy("517") && sqlite_busy("262"));
        assert!(!sqlite_busy("19") && !sqlite_busy("2067") && !sqlite_busy("x"));
    }
}
