//! What a conversation's history is made of (SPEC §5): chat messages (people's and the
//! `RECORDING_AVAILABLE` ones), its participants, calls and layers, recordings, the accounts'
//! conversation lists and recorded time.

use sqlx::Row;

use super::{
    Columns, Conversation, Metadata, MetadataError, Participant, Pool, Recording, new_id, with_pool,
};

/// Who sent a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// A participant's id, or an API key's id when an administrator posted it.
    pub id: String,
    /// Its name when it was sent.
    pub name: String,
}

/// A chat message of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A person's (or an integration's) text.
    Text {
        /// Its id.
        id: String,
        /// Who sent it.
        sender: Sender,
        /// What it says.
        text: String,
        /// When (Unix ms).
        at_ms: i64,
    },
    /// A recording completed; it sits at the recording's end.
    RecordingAvailable {
        /// Its id.
        id: String,
        /// The recording.
        recording_id: String,
        /// Where it sits (the recording's end, Unix ms).
        at_ms: i64,
    },
}

impl Message {
    /// Where it sits in the timeline (Unix ms).
    pub fn at_ms(&self) -> i64 {
        match self {
            Message::Text { at_ms, .. } | Message::RecordingAvailable { at_ms, .. } => *at_ms,
        }
    }
}

/// A call or collaboration layer as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Its id.
    pub id: String,
    /// `CALL` or `COLLABORATION_LAYER`.
    pub source: String,
    /// `AUDIO`, `AUDIO_VIDEO` or `SCREEN_SHARING`.
    pub kind: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// When it ended (Unix ms).
    pub ended_at_ms: Option<i64>,
}

/// Where a page of a listing starts: after this (creation time, id).
pub type PageCursor = (i64, String);

impl Metadata {
    /// Adds a text message; returns it.
    pub async fn add_text_message(
        &self,
        conversation_id: &str,
        sender: Sender,
        text: &str,
        now_ms: i64,
    ) -> Result<Message, MetadataError> {
        with_pool!(self, pool => {
            let id = new_id("msg");
            let result = sqlx::query(
                "INSERT INTO messages (id, conversation_id, type, sender_id, sender_name, text, at_ms) \
                 VALUES ($1, $2, 'TEXT', $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(conversation_id)
            .bind(&sender.id)
            .bind(&sender.name)
            .bind(text)
            .bind(now_ms)
            .execute(pool)
            .await;
            super::parent_must_exist(result, "conversation", conversation_id)?;
            Ok(Message::Text {
                id,
                sender,
                text: text.to_owned(),
                at_ms: now_ms,
            })
        })
    }

    /// Marks a recording `COMPLETE` and adds its `RECORDING_AVAILABLE` message at its end, in
    /// one transaction (a crash leaves both or neither); completing it again changes nothing.
    pub async fn complete_recording(&self, recording_id: &str) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE recordings SET status = 'COMPLETE' WHERE id = $1")
                .bind(recording_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, type, recording_id, at_ms) \
                 SELECT $1, conversation_id, 'RECORDING_AVAILABLE', id, \
                 COALESCE(ended_at_ms, started_at_ms, created_at_ms) FROM recordings WHERE id = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(new_id("msg"))
            .bind(recording_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A conversation's messages in timeline order.
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, type, sender_id, sender_name, text, recording_id, at_ms FROM messages \
                 WHERE conversation_id = $1 ORDER BY at_ms, rowid",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let kind: String = r.try_get("type")?;
                    let id = r.try_get("id")?;
                    let at_ms = r.try_get("at_ms")?;
                    Ok(if kind == "TEXT" {
                        Message::Text {
                            id,
                            sender: Sender {
                                id: r.try_get("sender_id")?,
                                name: r.try_get("sender_name")?,
                            },
                            text: r.try_get("text")?,
                            at_ms,
                        }
                    } else {
                        Message::RecordingAvailable {
                            id,
                            recording_id: r.try_get("recording_id")?,
                            at_ms,
                        }
                    })
                })
                .collect()
        })
    }

    /// A conversation's participants, in the order they joined.
    pub async fn participants(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Participant>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, conversation_id, name, role FROM participants \
                 WHERE conversation_id = $1 ORDER BY created_at_ms, rowid",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(super::participant_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// A conversation's calls and layers, in the order they started.
    pub async fn interactions(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Interaction>, MetadataError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, source, type, started_at_ms, ended_at_ms FROM interactions \
                 WHERE conversation_id = $1 ORDER BY started_at_ms, rowid",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| -> Result<Interaction, sqlx::Error> {
                    Ok(Interaction {
                        id: r.try_get("id")?,
                        source: r.try_get("source")?,
                        kind: r.try_get("type")?,
                        started_at_ms: r.try_get("started_at_ms")?,
                        ended_at_ms: r.try_get("ended_at_ms")?,
                    })
                })
                .collect::<Result<_, _>>()?)
        })
    }

    /// The calls a recording overlaps, and the participants who published media while it ran
    /// (what `getConversationRecordings` names as `callIds` and `participants`).
    pub async fn recorded_calls_and_participants(
        &self,
        recording: &Recording,
        now_ms: i64,
    ) -> Result<(Vec<String>, Vec<String>), MetadataError> {
        with_pool!(self, pool => {
            let Some(start) = recording.started_at_ms else {
                return Ok((Vec::new(), Vec::new()));
            };
            let end = recording.ended_at_ms.unwrap_or(now_ms);
            let calls = sqlx::query(
                "SELECT id FROM interactions WHERE conversation_id = $1 AND source = 'CALL' \
                 AND started_at_ms <= $2 AND COALESCE(ended_at_ms, $3) >= $4 ORDER BY started_at_ms, rowid",
            )
            .bind(&recording.conversation_id)
            .bind(end)
            .bind(end)
            .bind(start)
            .fetch_all(pool)
            .await?;
            let participants = sqlx::query(
                "SELECT DISTINCT p.participant_id AS id FROM publications p \
                 JOIN interactions i ON i.id = p.interaction_id \
                 WHERE i.conversation_id = $1 AND p.started_at_ms <= $2 \
                 AND COALESCE(p.ended_at_ms, $3) >= $4 ORDER BY p.participant_id",
            )
            .bind(&recording.conversation_id)
            .bind(end)
            .bind(end)
            .bind(start)
            .fetch_all(pool)
            .await?;
            Ok((ids(&calls)?, ids(&participants)?))
        })
    }

    /// One page of an account's conversations (every account's without one), oldest first,
    /// after `cursor`.
    pub async fn conversations_page(
        &self,
        account_id: Option<&str>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> Result<Vec<Conversation>, MetadataError> {
        with_pool!(self, pool => {
            let (after_ms, after_id) = cursor.cloned().unwrap_or((i64::MIN, String::new()));
            let rows = sqlx::query(
                "SELECT id, account_id, template_id, topic, created_at_ms FROM conversations \
                 WHERE ($1 IS NULL OR account_id = $2) \
                 AND (created_at_ms > $3 OR (created_at_ms = $4 AND id > $5)) \
                 ORDER BY created_at_ms, id LIMIT $6",
            )
            .bind(account_id)
            .bind(account_id)
            .bind(after_ms)
            .bind(after_ms)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(super::conversation_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// Milliseconds recorded in an account's conversations within `[from_ms, to_ms)`: each
    /// recording's span (start to end, or to `now_ms` while it runs) clipped to the period.
    pub async fn recorded_ms(
        &self,
        account_id: &str,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<i64, MetadataError> {
        with_pool!(self, pool => {
            // Clipped in Rust: the two dialects share no two-argument MIN/MAX, and a SUM of
            // BIGINT is NUMERIC in PostgreSQL.
            let rows = sqlx::query(
                "SELECT r.started_at_ms, r.ended_at_ms \
                 FROM recordings r JOIN conversations c ON c.id = r.conversation_id \
                 WHERE c.account_id = $1 AND r.started_at_ms IS NOT NULL AND r.started_at_ms < $2 \
                 AND (r.ended_at_ms IS NULL OR r.ended_at_ms > $3)",
            )
            .bind(account_id)
            .bind(to_ms)
            .bind(from_ms)
            .fetch_all(pool)
            .await?;
            let mut total = 0i64;
            for r in &rows {
                let start = r.integer("started_at_ms")?.max(from_ms);
                let end = r.optional_integer("ended_at_ms")?.unwrap_or(now_ms).min(to_ms);
                total = total.saturating_add((end - start).max(0));
            }
            Ok(total)
        })
    }
}

/// The `id` column of each row.
fn ids(rows: &[impl Columns]) -> Result<Vec<String>, sqlx::Error> {
    rows.iter().map(|r| r.text("id")).collect()
}
