//! Configuration properties (SPEC §2): their names, scopes, allowed values and defaults, in one
//! table ([`PROPERTIES`]) that validation, resolution and `docs/configuration.md` share (a test
//! renders the table and checks the document holds it).
//!
//! Settable properties are resolved by a cascade, most specific first: TEMPLATE → ACCOUNT →
//! built-in default ([`RecordingSettings::resolve`]). IMMUTABLE ones are read once at start-up
//! (config file or environment) and refused by the API.

use serde_json::Value;
use thiserror::Error;

/// Where a property can be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A conversation template.
    Template,
    /// An account.
    Account,
    /// Only at start-up, from the config file or the environment.
    Immutable,
}

impl Scope {
    /// As written in the API, the database and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Template => "TEMPLATE",
            Scope::Account => "ACCOUNT",
            Scope::Immutable => "IMMUTABLE",
        }
    }
}

/// The values a property takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `true` or `false`.
    Bool,
    /// One string of a list.
    OneOf(&'static [&'static str]),
    /// A list of distinct strings of a list (non-empty when `non_empty`).
    SubsetOf {
        /// The allowed members.
        values: &'static [&'static str],
        /// Whether the empty list is refused.
        non_empty: bool,
    },
    /// A whole number in a range.
    Integer {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// A file-name pattern (SPEC §6): placeholders in braces, safe characters only.
    FilenamePattern,
    /// An absolute `http://` or `https://` URL.
    Url,
    /// Any non-empty text.
    Text,
    /// A PEM public key recordings are encrypted for (`convrec_seal::RecipientKey`).
    PublicKey,
}

/// One property of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// Its short name, as in SPEC §2.
    pub name: &'static str,
    /// Where it can be set.
    pub scopes: &'static [Scope],
    /// Its values.
    pub kind: ValueKind,
    /// Its built-in default, as JSON (`null`: none).
    pub default: &'static str,
    /// What it does, for the docs.
    pub doc: &'static str,
}

const SETTABLE: &[Scope] = &[Scope::Template, Scope::Account];

/// The placeholders a file-name pattern may use.
pub const FILENAME_PLACEHOLDERS: &[&str] = &[
    "conversationId",
    "recordingId",
    "accountId",
    "startTime",
    "type",
];

/// Every property convrec knows.
pub const PROPERTIES: &[Property] = &[
    Property {
        name: "messenger.recordingEnabled",
        scopes: &[Scope::Account],
        kind: ValueKind::Bool,
        default: "false",
        doc: "The account may record at all (both switches must be on).",
    },
    Property {
        name: "conversation.recording.recordingEnabled",
        scopes: SETTABLE,
        kind: ValueKind::Bool,
        default: "false",
        doc: "Conversations (of the template) are recorded (both switches must be on).",
    },
    Property {
        name: "conversation.recording.recordingTriggeringMode",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["AUTOMATIC", "MANUAL"]),
        default: "\"AUTOMATIC\"",
        doc: "AUTOMATIC: a triggering interaction starts a recording; MANUAL: a participant starts it.",
    },
    Property {
        name: "conversation.recording.allowManualRecording",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["NONE", "ASSIGNED_AGENT", "ALL_AGENTS"]),
        default: "\"ASSIGNED_AGENT\"",
        doc: "Who may start and stop a manual recording.",
    },
    Property {
        name: "conversation.recording.recordingTriggeringSources",
        scopes: SETTABLE,
        kind: ValueKind::SubsetOf {
            values: &["CALL", "COLLABORATION_LAYER"],
            non_empty: true,
        },
        default: "[\"CALL\", \"COLLABORATION_LAYER\"]",
        doc: "Interactions that start an automatic recording and keep it running.",
    },
    Property {
        name: "conversation.recording.recordingType",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["AUDIO", "AUDIO_VIDEO"]),
        default: "\"AUDIO_VIDEO\"",
        doc: "Record sound only, or sound and video.",
    },
    Property {
        name: "conversation.recording.recordingLayout",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["COMPOSED", "RAW_TRACKS"]),
        default: "\"COMPOSED\"",
        doc: "COMPOSED: one file, one picture (the shared screen large, cameras beside it, the speaker framed, names under the tiles) and one mixed sound. RAW_TRACKS: one file per publication plus a manifest.",
    },
    Property {
        name: "conversation.recording.recordingResolution",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["854x480", "1280x720", "1920x1080"]),
        default: "\"1280x720\"",
        doc: "COMPOSED recordings: the picture's size.",
    },
    Property {
        name: "conversation.recording.recordingFrameRate",
        scopes: SETTABLE,
        kind: ValueKind::Integer { min: 1, max: 30 },
        default: "15",
        doc: "COMPOSED recordings: pictures per second.",
    },
    Property {
        name: "conversation.recording.recordingVideoBitrate",
        scopes: SETTABLE,
        kind: ValueKind::Integer {
            min: 100,
            max: 8000,
        },
        default: "800",
        doc: "COMPOSED recordings: the video's target bitrate in kbit/s (the seed's rule of thumb: ~0.8 Mbit/s for 1080p collaboration content).",
    },
    Property {
        name: "conversation.recording.recordingStartMode",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["SYNCHRONOUS", "ASYNCHRONOUS"]),
        default: "\"SYNCHRONOUS\"",
        doc: "SYNCHRONOUS: media reaches no participant until the recorder is ready.",
    },
    Property {
        name: "conversation.recording.recordingFailoverMode",
        scopes: SETTABLE,
        kind: ValueKind::OneOf(&["RETRY", "ABORT"]),
        default: "\"RETRY\"",
        doc: "After failed attempts or a failure mid-way: keep trying, or end the interactions.",
    },
    Property {
        name: "conversation.recording.recordingMaxRetries",
        scopes: SETTABLE,
        kind: ValueKind::Integer { min: 1, max: 100 },
        default: "3",
        doc: "Attempts to start a recorder.",
    },
    Property {
        name: "conversation.recording.initializationTimeout",
        scopes: SETTABLE,
        kind: ValueKind::Integer { min: 1, max: 600 },
        default: "30",
        doc: "Seconds a recorder has to connect and be ready.",
    },
    Property {
        name: "conversation.recording.recordingMaxRetryDelay",
        scopes: SETTABLE,
        kind: ValueKind::Integer { min: 1, max: 3600 },
        default: "300",
        doc: "Seconds: the cap of the doubling delay between attempts.",
    },
    Property {
        name: "conversation.recording.recordingFilenamePattern",
        scopes: SETTABLE,
        kind: ValueKind::FilenamePattern,
        default: "\"recording-{conversationId}-{startTime}.mp4\"",
        doc: "The file name users see; placeholders {conversationId}, {recordingId}, {accountId}, {startTime} (UTC YYYYMMDD-HHMMSS), {type}.",
    },
    Property {
        name: "conversation.recording.allowSeeRecordingAvailableMessages",
        scopes: SETTABLE,
        kind: ValueKind::SubsetOf {
            values: &["ASSIGNED_AGENT", "SECONDARY_AGENT", "VISITOR"],
            non_empty: false,
        },
        default: "[\"ASSIGNED_AGENT\", \"SECONDARY_AGENT\"]",
        doc: "Participant roles that see recordings and RECORDING_AVAILABLE messages.",
    },
    Property {
        name: "conversation.recording.showRecordingBanner",
        scopes: SETTABLE,
        kind: ValueKind::Bool,
        default: "true",
        doc: "Clients show that the conversation is being recorded.",
    },
    Property {
        name: "conversation.recording.encryptionPublicKey",
        scopes: &[Scope::Account],
        kind: ValueKind::PublicKey,
        default: "null",
        doc: "Recordings are encrypted as they stream, each file with a fresh key wrapped for this PEM public key (X25519, or RSA of 2048 to 8192 bits); the server never holds the private key (docs/security.md). Not set: stored as recorded.",
    },
    Property {
        name: "identifier.recordingEntryPointBaseUrl",
        scopes: &[Scope::Immutable],
        kind: ValueKind::Url,
        default: "null",
        doc: "The URL recorders reach the server at (default: http:// + the listening address; required when listening on a wildcard address).",
    },
    Property {
        name: "conversation.recording.recordingApiKeyId",
        scopes: &[Scope::Immutable],
        kind: ValueKind::Text,
        default: "null",
        doc: "The id of a RECORDER API key recorders must also present at their entry point (set at start-up: --recording-api-key-id; recorders get its secret from CONVREC_RECORDER_API_KEY); none: the entry point is their only credential.",
    },
];

/// Why a configuration change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No such property.
    #[error("unknown property '{name}'; known properties: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// The property cannot be set in this scope.
    #[error("property '{name}' cannot be set in scope {scope}; it can be set in: {allowed}")]
    WrongScope {
        /// The property.
        name: String,
        /// The scope asked for.
        scope: &'static str,
        /// Where it can be set.
        allowed: String,
    },
    /// The value is not allowed.
    #[error("property '{name}' cannot be {value}; allowed: {allowed}")]
    InvalidValue {
        /// The property.
        name: String,
        /// The value given, as JSON.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// The property called `name`.
pub fn property(name: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.name == name)
}

/// Checks one value for a property; `Err` says what is allowed.
pub fn check_value(kind: ValueKind, value: &Value) -> Result<(), String> {
    let valid = match kind {
        ValueKind::Bool => value.is_boolean(),
        ValueKind::OneOf(values) => value.as_str().is_some_and(|v| values.contains(&v)),
        ValueKind::SubsetOf { values, non_empty } => value.as_array().is_some_and(|items| {
            let mut seen = Vec::new();
            (!non_empty || !items.is_empty())
                && items.iter().all(|i| {
                    i.as_str().is_some_and(|s| {
                        let fresh = !seen.contains(&s);
                        seen.push(s);
                        fresh && values.contains(&s)
                    })
                })
        }),
        ValueKind::Integer { min, max } => value.as_i64().is_some_and(|n| (min..=max).contains(&n)),
        ValueKind::FilenamePattern => {
            return match value.as_str() {
                Some(pattern) => check_filename_pattern(pattern),
                None => Err(allowed_values(kind)),
            };
        }
        ValueKind::Url => value.as_str().is_some_and(|u| {
            (u.starts_with("http://") || u.starts_with("https://"))
                && u.split_once("://")
                    .is_some_and(|(_, rest)| !rest.is_empty())
        }),
        ValueKind::Text => value.as_str().is_some_and(|t| !t.trim().is_empty()),
        ValueKind::PublicKey => match value {
            Value::String(pem) => {
                return convrec_seal::RecipientKey::from_pem(pem)
                    .map(|_| ())
                    .map_err(|e| format!("{}; this one: {e}", allowed_values(kind)));
            }
            _ => false,
        },
    };
    if valid {
        Ok(())
    } else {
        Err(allowed_values(kind))
    }
}

/// Checks a whole change for `scope`; returns the (name, JSON value) pairs to store (`null`:
/// remove the property from the scope), or the first error (nothing is stored then).
pub fn validate_change(
    scope: Scope,
    properties: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, String)>, ConfigError> {
    properties
        .iter()
        .map(|(name, value)| {
            let p = property(name).ok_or_else(|| ConfigError::Unknown {
                name: name.clone(),
                known: PROPERTIES
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            if !p.scopes.contains(&scope) {
                return Err(ConfigError::WrongScope {
                    name: name.clone(),
                    scope: scope.as_str(),
                    allowed: p
                        .scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // null unsets: the property falls back to the next scope, then its default.
            if !value.is_null() {
                check_value(p.kind, value).map_err(|allowed| ConfigError::InvalidValue {
                    name: name.clone(),
                    value: value.to_string(),
                    allowed,
                })?;
            }
            Ok((name.clone(), value.to_string()))
        })
        .collect()
}

/// What a kind of value allows, in words.
pub fn allowed_values(kind: ValueKind) -> String {
    match kind {
        ValueKind::Bool => "true or false".to_owned(),
        ValueKind::OneOf(values) => values.join(", "),
        ValueKind::SubsetOf { values, non_empty } => format!(
            "a list of distinct values of {}{}",
            values.join(", "),
            if non_empty { ", not empty" } else { "" }
        ),
        ValueKind::Integer { min, max } => format!("a whole number from {min} to {max}"),
        ValueKind::FilenamePattern => format!(
            "a file name of letters, digits, '.', '_' and '-', with placeholders {}; no path separators or '..'",
            FILENAME_PLACEHOLDERS
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ValueKind::Url => "an absolute http:// or https:// URL".to_owned(),
        ValueKind::Text => "non-empty text".to_owned(),
        ValueKind::PublicKey => {
            "a PEM public key ('-----BEGIN PUBLIC KEY-----'), X25519 or RSA of 2048 to 8192 bits"
                .to_owned()
        }
    }
}

/// Checks a file-name pattern (SPEC §6): only known placeholders, and the name it makes is a
/// safe file name (letters, digits, `.`, `_`, `-`; not starting with `.`; at most 200 bytes).
pub fn check_filename_pattern(pattern: &str) -> Result<(), String> {
    let allowed = allowed_values(ValueKind::FilenamePattern);
    let mut literal = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find(['{', '}']) {
        literal.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(format!("an unmatched '}}'; {allowed}"));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("an unclosed '{{'; {allowed}"));
        };
        let name = &rest[open + 1..open + close];
        if !FILENAME_PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}}; {allowed}"));
        }
        // Placeholders expand to safe characters: stand in with one.
        literal.push('x');
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    let safe = literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if literal.is_empty() || !safe || literal.starts_with('.') || literal.contains("..") {
        return Err(allowed);
    }
    if pattern.len() > 200 {
        return Err(format!("at most 200 bytes; {allowed}"));
    }
    Ok(())
}

/// A property's value resolved through the scopes, most specific first: each slice holds the
/// (name, JSON value) pairs set in one scope. Falls back to the built-in default.
pub fn resolve(name: &str, scopes: &[&[(String, String)]]) -> Value {
    scopes
        .iter()
        // A null is not set (the store removes it; a change may still hold one).
        .find_map(|set| set.iter().find(|(n, v)| n == name && v != "null"))
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .or_else(|| property(name).and_then(|p| serde_json::from_str(p.default).ok()))
        .unwrap_or(Value::Null)
}

/// How recordings of one conversation behave: every settable property, resolved and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// Both switches are on.
    pub enabled: bool,
    /// `AUTOMATIC` (true) or `MANUAL`.
    pub automatic: bool,
    /// `NONE`, `ASSIGNED_AGENT` or `ALL_AGENTS`.
    pub allow_manual_recording: String,
    /// Triggering sources: calls.
    pub triggered_by_calls: bool,
    /// Triggering sources: collaboration layers.
    pub triggered_by_layers: bool,
    /// `AUDIO` or `AUDIO_VIDEO`.
    pub recording_type: String,
    /// `RAW_TRACKS` (or `COMPOSED`, later).
    pub layout: String,
    /// `SYNCHRONOUS` (true) or `ASYNCHRONOUS`.
    pub synchronous: bool,
    /// `RETRY` (true) or `ABORT`.
    pub retry: bool,
    /// Attempts to start a recorder.
    pub max_attempts: u32,
    /// Seconds a recorder has to be ready.
    pub initialization_timeout_s: u32,
    /// Cap of the delay between attempts, seconds.
    pub max_retry_delay_s: u32,
    /// The file-name pattern.
    pub filename_pattern: String,
    /// Roles that see recordings.
    pub roles_that_see: Vec<String>,
    /// Clients show a banner.
    pub show_banner: bool,
    /// Composed picture: width and height.
    pub resolution: (u32, u32),
    /// Composed pictures per second.
    pub frame_rate: u32,
    /// Composed video bitrate, bits per second.
    pub video_bitrate: u32,
    /// The PEM public key files are encrypted for, if any.
    pub encryption_public_key: Option<String>,
}

impl RecordingSettings {
    /// Resolves every property through `scopes` (most specific first: template, then account).
    pub fn resolve(scopes: &[&[(String, String)]]) -> Self {
        let get = |name: &str| resolve(&format!("conversation.recording.{name}"), scopes);
        let text = |name: &str| get(name).as_str().unwrap_or_default().to_owned();
        let number = |name: &str| {
            get(name)
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1)
        };
        let list = |name: &str| -> Vec<String> {
            get(name)
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let sources = list("recordingTriggeringSources");
        Self {
            enabled: resolve("messenger.recordingEnabled", scopes) == Value::Bool(true)
                && get("recordingEnabled") == Value::Bool(true),
            automatic: text("recordingTriggeringMode") == "AUTOMATIC",
            allow_manual_recording: text("allowManualRecording"),
            triggered_by_calls: sources.iter().any(|s| s == "CALL"),
            triggered_by_layers: sources.iter().any(|s| s == "COLLABORATION_LAYER"),
            recording_type: text("recordingType"),
            layout: text("recordingLayout"),
            synchronous: text("recordingStartMode") == "SYNCHRONOUS",
            retry: text("recordingFailoverMode") == "RETRY",
            max_attempts: number("recordingMaxRetries"),
            initialization_timeout_s: number("initializationTimeout"),
            max_retry_delay_s: number("recordingMaxRetryDelay"),
            filename_pattern: text("recordingFilenamePattern"),
            roles_that_see: list("allowSeeRecordingAvailableMessages"),
            show_banner: get("showRecordingBanner") == Value::Bool(true),
            resolution: text("recordingResolution")
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .unwrap_or((1280, 720)),
            frame_rate: number("recordingFrameRate"),
            video_bitrate: number("recordingVideoBitrate").saturating_mul(1000),
            encryption_public_key: get("encryptionPublicKey").as_str().map(str::to_owned),
        }
    }
}

/// The table as Markdown, for `docs/configuration.md`.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| property | scope | values | default | what it does |\n|---|---|---|---|---|\n",
    );
    for p in PROPERTIES {
        let scopes: Vec<&str> = p.scopes.iter().map(|s| s.as_str()).collect();
        let default = if p.default == "null" {
            "none"
        } else {
            p.default
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} |\n",
            p.name,
            scopes.join(", "),
            allowed_values(p.kind),
            default,
            p.doc
        ));
    }
    out
}

/// The fuzz harness (`fuzz/fuzz_targets/configuration.rs`, replayed by the tests): the bytes
/// are a configuration change as the API receives it (a JSON object of properties). A change
/// is refused with an error or accepted whole; what is accepted resolves into settings, every
/// stored value parses back to the value given, and a file name renders from any accepted
/// pattern.
#[doc(hidden)]
pub fn fuzz_configuration(data: &[u8]) {
    let Ok(Value::Object(change)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for scope in [Scope::Template, Scope::Account, Scope::Immutable] {
        let Ok(stored) = validate_change(scope, &change) else {
            continue;
        };
        for (name, text) in &stored {
            let value: Value = serde_json::from_str(text).expect("a stored value parses");
            assert_eq!(Some(&value), change.get(name), "{name} is stored as given");
        }
        let settings = RecordingSettings::resolve(&[&stored]);
        let parts = FileNameParts {
            conversation_id: "c",
            recording_id: "r",
            account_id: "a",
            start_ms: 0,
            recording_type: &settings.recording_type,
        };
        let _ = render_file_name(&settings.filename_pattern, &parts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    #[test]
    fn a_valid_change_is_returned_whole() {
        let set = validate_change(
            Scope::Account,
            &change(json!({"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": true})),
        )
        .expect("valid");
        assert_eq!(set.len(), 2);
        assert!(RecordingSettings::resolve(&[&set]).enabled);
        assert!(!RecordingSettings::resolve(&[&set[..1]]).enabled);
    }

    #[test]
    fn errors_name_the_property_the_value_and_what_is_allowed() {
        let refused = |scope, v: Value| {
            validate_change(scope, &change(v))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(Scope::Account, json!({"messenger.recordingEnabled": "yes"})),
            "property 'messenger.recordingEnabled' cannot be \"yes\"; allowed: true or false"
        );
        assert!(
            refused(Scope::Template, json!({"messenger.recordingEnabled": true}))
                .contains("cannot be set in scope TEMPLATE; it can be set in: ACCOUNT")
        );
        assert!(
            refused(
                Scope::Account,
                json!({"identifier.recordingEntryPointBaseUrl": "http://x"})
            )
            .contains("cannot be set in scope ACCOUNT; it can be set in: IMMUTABLE")
        );
        assert!(refused(Scope::Account, json!({"nope": 1})).starts_with("unknown property 'nope'"));
        assert!(
            refused(
                Scope::Account,
                json!({"conversation.recording.recordingLayout": "MOSAIC"})
            )
            .ends_with("allowed: COMPOSED, RAW_TRACKS")
        );
        assert_eq!(
            refused(
                Scope::Account,
                json!({"conversation.recording.recordingMaxRetries": 0})
            ),
            "property 'conversation.recording.recordingMaxRetries' cannot be 0; allowed: a whole number from 1 to 100"
        );
        assert!(
            refused(
                Scope::Account,
                json!({"conversation.recording.recordingTriggeringSources": []})
            )
            .ends_with("not empty")
        );
        assert!(
            refused(
                Scope::Account,
                json!({"conversation.recording.recordingTriggeringSources": ["CALL", "CALL"]})
            )
            .contains("distinct")
        );
        assert!(
            refused(
                Scope::Account,
                json!({"conversation.recording.initializationTimeout": 1.5})
            )
            .contains("whole number")
        );
    }

    #[test]
    fn file_name_patterns_make_safe_names() {
        for good in [
            "recording-{conversationId}-{startTime}.mp4",
            "{accountId}_{recordingId}_{type}.mp4",
            "plain.mp4",
        ] {
            assert_eq!(check_filename_pattern(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("../etc/passwd", "file name"),
            ("a/b.mp4", "file name"),
            ("a\\b.mp4", "file name"),
            (".hidden.mp4", "file name"),
            ("a..b.mp4", "file name"),
            ("{nope}.mp4", "unknown placeholder {nope}"),
            ("{conversationId.mp4", "unclosed"),
            ("x}.mp4", "unmatched"),
            ("", "file name"),
            ("a b.mp4", "file name"),
        ] {
            let e = check_filename_pattern(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_most_specific_scope_wins_and_defaults_fill_in() {
        let account = vec![
            ("messenger.recordingEnabled".to_owned(), "true".to_owned()),
            (
                "conversation.recording.recordingEnabled".to_owned(),
                "true".to_owned(),
            ),
            (
                "conversation.recording.recordingMaxRetries".to_owned(),
                "7".to_owned(),
            ),
        ];
        let template = vec![(
            "conversation.recording.recordingEnabled".to_owned(),
            "false".to_owned(),
        )];
        assert!(!RecordingSettings::resolve(&[&template, &account]).enabled);
        let settings = RecordingSettings::resolve(&[&account]);
        assert!(settings.enabled);
        assert_eq!(settings.max_attempts, 7);
        // Defaults (SPEC §2).
        assert!(
            settings.automatic && settings.synchronous && settings.retry && settings.show_banner
        );
        assert!(settings.triggered_by_calls && settings.triggered_by_layers);
        assert_eq!(settings.initialization_timeout_s, 30);
        assert_eq!(settings.max_retry_delay_s, 300);
        assert_eq!(settings.allow_manual_recording, "ASSIGNED_AGENT");
        assert_eq!(settings.recording_type, "AUDIO_VIDEO");
        assert_eq!(
            settings.filename_pattern,
            "recording-{conversationId}-{startTime}.mp4"
        );
        assert_eq!(
            settings.roles_that_see,
            ["ASSIGNED_AGENT", "SECONDARY_AGENT"]
        );
    }

    #[test]
    fn every_default_is_an_allowed_value() {
        for p in PROPERTIES {
            let default: Value = serde_json::from_str(p.default).expect(p.name);
            if default.is_null() {
                // Immutable properties come from the server's settings; no key means none.
                assert!(
                    p.scopes == [Scope::Immutable] || p.kind == ValueKind::PublicKey,
                    "{} needs a default",
                    p.name
                );
            } else {
                assert_eq!(check_value(p.kind, &default), Ok(()), "{}", p.name);
            }
        }
    }
}

/// A recording's end reasons (SPEC §5).
pub const END_REASONS: &[&str] = &[
    "NORMAL",
    "ABORT_SYSTEM",
    "ABORT_TIMEOUT",
    "ABORT_BLOBSTORE_FAILURE",
    "ABORT_UNEXPECTED",
];

/// What a file-name pattern's placeholders stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNameParts<'a> {
    /// `{conversationId}`.
    pub conversation_id: &'a str,
    /// `{recordingId}`.
    pub recording_id: &'a str,
    /// `{accountId}`.
    pub account_id: &'a str,
    /// `{startTime}`, Unix milliseconds (rendered UTC `YYYYMMDD-HHMMSS`).
    pub start_ms: i64,
    /// `{type}`: `AUDIO` or `AUDIO_VIDEO`.
    pub recording_type: &'a str,
}

/// The file name users see (SPEC §6): the pattern with its placeholders filled in. Patterns
/// are checked when they are set ([`check_filename_pattern`]); the ids are safe characters.
pub fn render_file_name(pattern: &str, parts: &FileNameParts<'_>) -> String {
    pattern
        .replace("{conversationId}", parts.conversation_id)
        .replace("{recordingId}", parts.recording_id)
        .replace("{accountId}", parts.account_id)
        .replace("{startTime}", &utc_stamp(parts.start_ms))
        .replace("{type}", parts.recording_type)
}

/// The (year, month 1–12, day 1–31) of a day counted from 1970-01-01 (H. Hinnant's
/// algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix milliseconds as UTC `YYYYMMDD-HHMMSS`.
pub fn utc_stamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod file_name_tests {
    use super::*;

    #[test]
    fn names_fill_the_placeholders_with_utc_times() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-11-28 08:23:52 UTC.
        assert_eq!(utc_stamp(1_795_854_232_000), "20261128-082352");
        assert_eq!(utc_stamp(951_782_400_000), "20000229-000000");
        let parts = FileNameParts {
            conversation_id: "conv_1",
            recording_id: "rec_2",
            account_id: "acc_3",
            start_ms: 1_795_854_232_000,
            recording_type: "AUDIO_VIDEO",
        };
        assert_eq!(
            render_file_name("recording-{conversationId}-{startTime}.mp4", &parts),
            "recording-conv_1-20261128-082352.mp4"
        );
        assert_eq!(
            render_file_name("{accountId}_{recordingId}_{type}.mp4", &parts),
            "acc_3_rec_2_AUDIO_VIDEO.mp4"
        );
    }
}
