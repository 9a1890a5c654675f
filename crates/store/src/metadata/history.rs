//! What a conversation's history is made of (SPEC §5): chat messages (people's and the
//! `RECORDING_AVAILABLE` ones), its participants, calls and layers, recordings, the accounts'
//! conversation lists and recorded time.

use sqlx::Row;

use super::{Conversation, Metadata, MetadataError, Participant, Recording, new_id};

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
        let id = new_id("msg");
        let result = sqlx::query(
            "INSERT INTO messages (id, conversation_id, type, sender_id, sender_name, text, at_ms) \
             VALUES (?, ?, 'TEXT', ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(conversation_id)
        .bind(&sender.id)
        .bind(&sender.name)
        .bind(text)
        .bind(now_ms)
        .execute(&self.pool)
        .await;
        super::parent_must_exist(result, "conversation", conversation_id)?;
        Ok(Message::Text {
            id,
            sender,
            text: text.to_owned(),
            at_ms: now_ms,
        })
    }

    /// Marks a recording `COMPLETE` and adds its `RECORDING_AVAILABLE` message at its end, in
    /// one transaction (a crash leaves both or neither); completing it again changes nothing.
    pub async fn complete_recording(&self, recording_id: &str) -> Result<(), MetadataError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE recordings SET status = 'COMPLETE' WHERE id = ?")
            .bind(recording_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO messages (id, conversation_id, type, recording_id, at_ms) \
             SELECT ?, conversation_id, 'RECORDING_AVAILABLE', id, \
             COALESCE(ended_at_ms, started_at_ms, created_at_ms) FROM recordings WHERE id = ?",
        )
        .bind(new_id("msg"))
        .bind(recording_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A conversation's messages in timeline order.
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, MetadataError> {
        let rows = sqlx::query(
            "SELECT id, type, sender_id, sender_name, text, recording_id, at_ms FROM messages \
             WHERE conversation_id = ? ORDER BY at_ms, rowid",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
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
    }

    /// A conversation's participants, in the order they joined.
    pub async fn participants(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Participant>, MetadataError> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, name, role FROM participants \
             WHERE conversation_id = ? ORDER BY created_at_ms, rowid",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(super::participant_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// A conversation's calls and layers, in the order they started.
    pub async fn interactions(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Interaction>, MetadataError> {
        let rows = sqlx::query(
            "SELECT id, source, type, started_at_ms, ended_at_ms FROM interactions \
             WHERE conversation_id = ? ORDER BY started_at_ms, rowid",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
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
    }

    /// The calls a recording overlaps, and the participants who published media while it ran
    /// (what `getConversationRecordings` names as `callIds` and `participants`).
    pub async fn recorded_calls_and_participants(
        &self,
        recording: &Recording,
        now_ms: i64,
    ) -> Result<(Vec<String>, Vec<String>), MetadataError> {
        let Some(start) = recording.started_at_ms else {
            return Ok((Vec::new(), Vec::new()));
        };
        let end = recording.ended_at_ms.unwrap_or(now_ms);
        let calls = sqlx::query(
            "SELECT id FROM interactions WHERE conversation_id = ? AND source = 'CALL' \
             AND started_at_ms <= ? AND COALESCE(ended_at_ms, ?) >= ? ORDER BY started_at_ms, rowid",
        )
        .bind(&recording.conversation_id)
        .bind(end)
        .bind(end)
        .bind(start)
        .fetch_all(&self.pool)
        .await?;
        let participants = sqlx::query(
            "SELECT DISTINCT p.participant_id AS id FROM publications p \
             JOIN interactions i ON i.id = p.interaction_id \
             WHERE i.conversation_id = ? AND p.started_at_ms <= ? \
             AND COALESCE(p.ended_at_ms, ?) >= ? ORDER BY p.participant_id",
        )
        .bind(&recording.conversation_id)
        .bind(end)
        .bind(end)
        .bind(start)
        .fetch_all(&self.pool)
        .await?;
        let ids = |rows: Vec<sqlx::sqlite::SqliteRow>| {
            rows.iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<Vec<String>, _>>()
        };
        Ok((ids(calls)?, ids(participants)?))
    }

    /// One page of an account's conversations (every account's without one), oldest first,
    /// after `cursor`.
    pub async fn conversations_page(
        &self,
        account_id: Option<&str>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> Result<Vec<Conversation>, MetadataError> {
        let (after_ms, after_id) = cursor.cloned().unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(
            "SELECT id, account_id, template_id, topic, created_at_ms FROM conversations \
             WHERE (? IS NULL OR account_id = ?) \
             AND (created_at_ms > ? OR (created_at_ms = ? AND id > ?)) \
             ORDER BY created_at_ms, id LIMIT ?",
        )
        .bind(account_id)
        .bind(account_id)
        .bind(after_ms)
        .bind(after_ms)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(super::conversation_from_row)
            .collect::<Result<_, _>>()?)
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
        let row = sqlx::query(
            "SELECT COALESCE(SUM(MAX(0, MIN(COALESCE(r.ended_at_ms, ?), ?) - MAX(r.started_at_ms, ?))), 0) AS ms \
             FROM recordings r JOIN conversations c ON c.id = r.conversation_id \
             WHERE c.account_id = ? AND r.started_at_ms IS NOT NULL",
        )
        .bind(now_ms)
        .bind(to_ms)
        .bind(from_ms)
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("ms")?)
    }
}
