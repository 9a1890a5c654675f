//! The fuzz harness of API request bodies (`fuzz/fuzz_targets/api_body.rs`): the JSON every
//! `POST`/`PUT` of the web API takes, through the same decoding as the handlers.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::typed_body;

/// The first byte picks a request body type, the rest is the body: it is taken, or refused with
/// a 422 naming what is wrong; never a panic, never another status.
#[doc(hidden)]
pub fn request_body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    // What axum's JSON extractor does before ours.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    match which % 11 {
        0 => decode::<super::accounts::NewAccount>(value),
        1 => decode::<super::api_keys::NewApiKey>(value),
        2 => decode::<super::interactions::NewCall>(value),
        3 => decode::<super::interactions::NewLayer>(value),
        4 => decode::<super::conversations::NewConversation>(value),
        5 => decode::<super::conversations::NewParticipant>(value),
        6 => decode::<super::history::NewMessage>(value),
        7 => decode::<super::templates::NewTemplate>(value),
        8 => decode::<super::webhooks::NewWebhook>(value),
        9 => {
            if let Some(change) =
                decode_to::<super::configuration::AccountConfigurationChange>(value)
            {
                let _ = convrec_core::config::validate_change(
                    convrec_core::config::Scope::Account,
                    &change.properties,
                );
            }
        }
        _ => {
            if let Some(change) =
                decode_to::<super::configuration::TemplateConfigurationChange>(value)
            {
                let _ = convrec_core::config::validate_change(
                    convrec_core::config::Scope::Template,
                    &change.properties,
                );
            }
        }
    }
}

fn decode<T: DeserializeOwned>(value: Value) {
    decode_to::<T>(value);
}

fn decode_to<T: DeserializeOwned>(value: Value) -> Option<T> {
    match typed_body::<T>(value) {
        Ok(body) => Some(body),
        Err(e) => {
            assert_eq!(e.status.as_u16(), 422, "{}", e.message);
            assert!(!e.message.is_empty());
            None
        }
    }
}
