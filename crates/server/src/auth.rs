//! Who is calling (SPEC §1, §5, §7): a global admin (the bootstrap key or a `GLOBAL_ADMIN` API
//! key), an account's admin (an `ADMIN` API key) or a participant (its token). What each may
//! see and do is the table in `docs/security.md`.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use convrec_store::metadata::{KeyRole, Participant};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::api::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A global admin: every account.
    GlobalAdmin {
        /// The API key's id (none for the bootstrap key).
        key_id: Option<String>,
    },
    /// An account's admin: everything in that account.
    AccountAdmin {
        /// The account.
        account_id: String,
        /// The API key's id.
        key_id: String,
    },
    /// A participant: its own conversation only.
    Participant(Participant),
}

impl Caller {
    /// Whether the caller sees an account (and so everything in it): its admins and the
    /// global admins. Participants see no account, only their conversation.
    pub fn sees_account(&self, account_id: &str) -> bool {
        match self {
            Caller::GlobalAdmin { .. } => true,
            Caller::AccountAdmin {
                account_id: own, ..
            } => own == account_id,
            Caller::Participant(_) => false,
        }
    }

    /// Whether the caller sees a conversation of `account_id`.
    pub fn sees_conversation(&self, account_id: &str, conversation_id: &str) -> bool {
        match self {
            Caller::Participant(p) => p.conversation_id == conversation_id,
            admin => admin.sees_account(account_id),
        }
    }

    /// The participant, if the caller is one.
    pub fn participant(&self) -> Option<&Participant> {
        match self {
            Caller::Participant(p) => Some(p),
            _ => None,
        }
    }

    /// Only an admin (of an account the caller was shown to see) may do this: 403 otherwise.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Participant(_) => Err(ApiError::forbidden("only an administrator may do this")),
            _ => Ok(()),
        }
    }

    /// Only a global admin may do this: 403 otherwise.
    pub fn require_global_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::GlobalAdmin { .. } => Ok(()),
            _ => Err(ApiError::forbidden(
                "only a global administrator may do this",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(state, &parts.headers).await
    }
}

/// The caller a request's `Authorization: Bearer …` names; 401 without valid credentials (a
/// revoked key is no credential).
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    if state.is_admin_key(token) {
        return Ok(Caller::GlobalAdmin { key_id: None });
    }
    if let Some(key) = state.metadata.api_key_by_secret(token).await? {
        return match (key.role, key.account_id) {
            (KeyRole::Admin, Some(account_id)) => Ok(Caller::AccountAdmin {
                account_id,
                key_id: key.id,
            }),
            (KeyRole::GlobalAdmin, None) => Ok(Caller::GlobalAdmin {
                key_id: Some(key.id),
            }),
            (KeyRole::Recorder, _) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "a RECORDER key is only for recorders' entry points; it opens no part of the web API",
            )),
            // The database's constraints keep these out.
            (KeyRole::Admin, None) | (KeyRole::GlobalAdmin, Some(_)) => {
                Err(ApiError::unauthorized())
            }
        };
    }
    match state.metadata.participant_by_token(token).await? {
        Some(p) => Ok(Caller::Participant(p)),
        None => Err(ApiError::unauthorized()),
    }
}

/// Whether a recorder's entry-point request presents the recorder key `required` (an unrevoked
/// `RECORDER` key of that id) as `Authorization: Bearer …`.
pub async fn presents_recorder_key(
    state: &AppState,
    headers: &HeaderMap,
    required: &str,
) -> Result<bool, ApiError> {
    let Some(token) = bearer(headers) else {
        return Ok(false);
    };
    Ok(state
        .metadata
        .api_key_by_secret(token)
        .await?
        .is_some_and(|key| key.role == KeyRole::Recorder && key.id == required))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

/// SHA-256 of a secret, to compare in constant time.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two digests without an early exit.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where the generated admin key is kept.
pub const ADMIN_KEY_FILE: &str = "admin-key";

/// The global admin key: `given` (from `CONVREC_BOOTSTRAP_ADMIN_KEY`), else the one stored in
/// the data directory, else a new one, stored there with mode 0600. Returns the key and
/// whether it was just generated (then it is shown once).
pub fn admin_key(data_dir: &Path, given: Option<&str>) -> std::io::Result<(String, bool)> {
    if let Some(key) = given {
        return Ok((key.to_owned(), false));
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok((key.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let key = format!(
        "crk_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    Ok((key, true))
}
