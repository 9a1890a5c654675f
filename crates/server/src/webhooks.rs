//! Webhooks (SPEC §5) after the Standard Webhooks specification: an event becomes one message
//! per registration that wants it, in a durable queue in the metadata store; a dispatcher sends
//! due messages (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256
//! of "id.timestamp.body">`), logs every attempt, and retries failures after 1 s, 2 s, 4 s, …
//! (capped at an hour) until delivered or [`MAX_ATTEMPTS`] were made. The `webhook-id` is the
//! message's and stays the same on every retry; a restart loses nothing (the queue is in the
//! database) and may repeat a delivery whose answer was lost (at-least-once).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::AppState;

/// The events a registration can ask for.
pub const EVENTS: &[&str] = &[
    "conversation.recording_started",
    "conversation.recording_failed",
    "conversation.recording_available",
];

/// Attempts per message before it is given up (about 68 minutes of retries, then one an hour).
pub const MAX_ATTEMPTS: u32 = 16;

/// The secret prefix of the Standard Webhooks specification.
const SECRET_PREFIX: &str = "whsec_";

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries in flight at once.
const PARALLEL_DELIVERIES: usize = 8;

/// How often the dispatcher looks for due messages when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);
/// How long a claimed message is this dispatcher's: far longer than its deliveries take
/// (they run 8 at a time, each within [`DELIVERY_TIMEOUT`]), so only a dead node's claims end.
const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// Checks a registration's secret: `whsec_` and base64 of 24 to 64 bytes. Returns the key.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let allowed = "'whsec_' followed by the base64 of 24 to 64 random bytes";
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("'secret' must be {allowed}"))?;
    let key = BASE64
        .decode(encoded)
        .map_err(|e| format!("'secret' is not valid base64 ({e}); it must be {allowed}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "'secret' holds {} bytes; it must be {allowed}",
            key.len()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` header for a message.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("bug: HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1` after `attempts` failed ones.
fn retry_delay(attempts: u32) -> Duration {
    let seconds = 1u64
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u64::MAX)
        .min(3600);
    Duration::from_secs(seconds)
}

/// Queues `event` with its fields for every registration of the account that wants it.
pub async fn emit(app: &AppState, account_id: &str, event: &str, fields: Value) {
    let now = crate::now_ms();
    let mut payload = json!({
        "type": event,
        "timestamp": now,
        "eventType": event,
        "accountId": account_id,
    });
    if let (Some(payload), Value::Object(fields)) = (payload.as_object_mut(), fields) {
        payload.extend(fields);
    }
    let body = payload.to_string();
    let registrations = match app.metadata.webhooks_for(account_id, event).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, event, "cannot read the webhook registrations");
            return;
        }
    };
    for registration in registrations {
        if let Err(e) = app
            .metadata
            .enqueue_webhook_message(&registration.id, event, &body, now)
            .await
        {
            tracing::error!(error = %e, event, webhook = %registration.id, "cannot queue a webhook message");
        }
    }
    app.webhook_wakeup.notify_one();
}

/// Sends due messages until the server stops; first frees the claims this node held when it
/// last stopped (their deliveries ended with it).
pub async fn run_dispatcher(app: AppState) {
    match app
        .metadata
        .release_webhook_claims(&app.node_id, crate::now_ms())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            messages = n,
            "webhook deliveries cut short by the last stop are due again"
        ),
        Err(e) => tracing::error!(error = %e, "cannot release this node's webhook claims"),
    }
    loop {
        let lease = i64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(i64::MAX);
        let due = match app
            .metadata
            .claim_due_webhook_messages(&app.node_id, crate::now_ms(), lease, 32)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue");
                tokio::time::sleep(POLL).await;
                Vec::new()
            }
        };
        let busy = !due.is_empty();
        // Several at once: one endpoint that does not answer must not hold up the others.
        futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(due),
            PARALLEL_DELIVERIES,
            |message| deliver(&app, message),
        )
        .await;
        if !busy {
            tokio::select! {
                () = app.webhook_wakeup.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// The payload to send now: download links are signed afresh at every attempt, so a delivery
/// retried hours later still carries links that work (their grants last an hour).
async fn with_fresh_links(app: &AppState, payload: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(payload) else {
        return payload.to_owned();
    };
    let Some(recording_id) = value["recordingId"].as_str().map(str::to_owned) else {
        return payload.to_owned();
    };
    if value.get("downloadLinks").is_none() {
        return payload.to_owned();
    }
    match app.metadata.recording_files(&recording_id).await {
        Ok(files) if !files.is_empty() => {
            value["downloadLinks"] = files
                .iter()
                .map(|f| json!(crate::api::download::link(app, &recording_id, f.file)))
                .collect();
            value.to_string()
        }
        // Deleted since (its links answer 404 either way), or unreadable: as it was queued.
        _ => payload.to_owned(),
    }
}

async fn deliver(app: &AppState, message: convrec_store::metadata::DueMessage) {
    let attempt = message.attempts + 1;
    let payload = with_fresh_links(app, &message.payload).await;
    let now_ms = crate::now_ms();
    let timestamp = now_ms / 1000;
    let allowed = crate::destinations::check_url(&app.webhook_destinations, &message.endpoint);
    let outcome = match secret_key(&message.secret).and_then(|key| allowed.map(|()| key)) {
        Ok(key) => {
            let sent = app
                .webhook_http
                .post(&message.endpoint)
                .timeout(DELIVERY_TIMEOUT)
                .header("content-type", "application/json")
                .header("user-agent", "convrec-webhooks")
                .header("webhook-id", &message.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature(&key, &message.id, timestamp, &payload),
                )
                .body(payload)
                .send()
                .await;
            match sent {
                Ok(response) => Ok(response.status().as_u16()),
                // Without the URL: it may carry credentials in its query. With the causes: a
                // refused address says why.
                Err(e) => Err(error_chain(&e.without_url())),
            }
        }
        Err(e) => Err(e),
    };
    let (status, error) = match &outcome {
        Ok(status) => (Some(*status), None),
        Err(e) => (None, Some(e.as_str())),
    };
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    let state = if delivered {
        "DELIVERED"
    } else if attempt >= MAX_ATTEMPTS {
        "FAILED"
    } else {
        "PENDING"
    };
    let next = now_ms + i64::try_from(retry_delay(attempt).as_millis()).unwrap_or(i64::MAX / 2);
    let outcome = if delivered { "delivered" } else { "failed" };
    app.metrics
        .webhook_attempts
        .get_or_create(&crate::metrics::OutcomeLabels { outcome })
        .inc();
    if !delivered {
        tracing::warn!(webhook_id = %message.id, attempt, ?status, error, state, "a webhook delivery failed");
    }
    if let Err(e) = app
        .metadata
        .record_webhook_attempt(&message.id, attempt, now_ms, status, error, state, next)
        .await
    {
        // The message stays due; wait before it is tried again rather than resend in a loop.
        tracing::error!(error = %e, "cannot log a webhook attempt");
        tokio::time::sleep(POLL).await;
    }
}

/// An error and its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_refused_with_what_is_allowed() {
        assert!(secret_key("plain").unwrap_err().contains("'whsec_'"));
        assert!(
            secret_key("whsec_!!!")
                .unwrap_err()
                .contains("not valid base64")
        );
        assert!(
            secret_key("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("holds 5 bytes")
        );
    }

    #[test]
    fn retries_double_and_are_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(40), Duration::from_secs(3600));
    }
}
