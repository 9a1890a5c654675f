//! API keys (SPEC §1): account administrators' and global administrators' credentials, stored
//! as SHA-256 hashes, shown once, revocable.

use super::{
    Columns, Metadata, MetadataError, Pool, Secret, hash, new_id, parent_must_exist, with_pool,
};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// Administers one account.
    Admin,
    /// Administers every account.
    GlobalAdmin,
    /// No account and no part of the web API: the key recorders present at their entry point
    /// when the server requires one (`conversation.recording.recordingApiKeyId`).
    Recorder,
}

impl KeyRole {
    /// As in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Admin => "ADMIN",
            KeyRole::GlobalAdmin => "GLOBAL_ADMIN",
            KeyRole::Recorder => "RECORDER",
        }
    }
}

impl std::str::FromStr for KeyRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ADMIN" => Ok(KeyRole::Admin),
            "GLOBAL_ADMIN" => Ok(KeyRole::GlobalAdmin),
            "RECORDER" => Ok(KeyRole::Recorder),
            other => Err(format!(
                "'{other}' is not an API key role; allowed: ADMIN, GLOBAL_ADMIN, RECORDER"
            )),
        }
    }
}

/// An API key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// The account it administers (none for a global admin key).
    pub account_id: Option<String>,
    /// What it may do.
    pub role: KeyRole,
    /// A name for people ("billing integration").
    pub name: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
    /// When it was revoked (Unix ms).
    pub revoked_at_ms: Option<i64>,
}

/// A `SELECT` of every column but the hash, then `$rest` (sqlx takes only static SQL).
macro_rules! select_keys {
    ($rest:literal) => {
        concat!(
            "SELECT id, account_id, role, name, created_at_ms, revoked_at_ms FROM api_keys ",
            $rest
        )
    };
}

fn from_row(r: &impl Columns) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.text("id")?,
        account_id: r.optional_text("account_id")?,
        role: r
            .text("role")?
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        name: r.text("name")?,
        created_at_ms: r.integer("created_at_ms")?,
        revoked_at_ms: r.optional_integer("revoked_at_ms")?,
    })
}

impl Metadata {
    /// Makes an API key: `account_id` for an `Admin` key, none for a `GlobalAdmin` key (the
    /// caller checks which). Returns it and its secret, which is not kept.
    pub async fn create_api_key(
        &self,
        account_id: Option<&str>,
        role: KeyRole,
        name: &str,
        now_ms: i64,
    ) -> Result<(ApiKey, Secret), MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("key");
            let secret = Secret(format!("crk_{}", Secret::random().expose()));
            let result = sqlx::query(
                "INSERT INTO api_keys (id, account_id, role, name, key_hash, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(account_id)
            .bind(role.as_str())
            .bind(name)
            .bind(hash(secret.expose()))
            .bind(now_ms)
            .execute(pool)
            .await;
            parent_must_exist(result, "account", account_id.unwrap_or_default())?;
            let key = ApiKey {
                id,
                account_id: account_id.map(str::to_owned),
                role,
                name: name.to_owned(),
                created_at_ms: now_ms,
                revoked_at_ms: None,
            };
            Ok((key, secret))
        })
    }

    /// The key a secret belongs to, unless it was revoked.
    pub async fn api_key_by_secret(&self, secret: &str) -> Result<Option<ApiKey>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(select_keys!("WHERE key_hash = $1 AND revoked_at_ms IS NULL"))
                .bind(hash(secret))
                .fetch_optional(pool)
                .await?;
            Ok(row.as_ref().map(from_row).transpose()?)
        })
    }

    /// A key by its id (revoked or not).
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, MetadataError> {
        with_pool!(self, pool => {
            let row = sqlx::query(select_keys!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(row.as_ref().map(from_row).transpose()?)
        })
    }

    /// An account's keys (none: the global admin keys), oldest first, revoked ones included.
    pub async fn api_keys(&self, account_id: Option<&str>) -> Result<Vec<ApiKey>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_keys!(
                "WHERE account_id IS NOT DISTINCT FROM $1 ORDER BY created_at_ms, id"
            ))
            .bind(account_id)
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
        })
    }

    /// Revokes a key (once; revoking it again changes nothing). Returns whether it exists.
    pub async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(self.api_key(id).await?.is_some())
        })
    }
}
