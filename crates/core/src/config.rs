//! Configuration properties (SPEC §2): their names, scopes, allowed values and defaults, in one
//! table that validation, resolution and the documentation share.
//!
//! Step 2 knows the two switches that decide whether a conversation is recorded and the layout;
//! step 3 completes the table (templates, start and failover modes, retries, file names).

use serde_json::Value;
use thiserror::Error;

/// Where a property can be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A conversation template.
    Template,
    /// An account.
    Account,
}

impl Scope {
    /// As written in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Template => "TEMPLATE",
            Scope::Account => "ACCOUNT",
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
    /// Its built-in default, as JSON.
    pub default: &'static str,
}

/// Every property convrec knows.
pub const PROPERTIES: &[Property] = &[
    Property {
        name: "messenger.recordingEnabled",
        scopes: &[Scope::Account],
        kind: ValueKind::Bool,
        default: "false",
    },
    Property {
        name: "conversation.recording.recordingEnabled",
        scopes: &[Scope::Template, Scope::Account],
        kind: ValueKind::Bool,
        default: "false",
    },
    Property {
        name: "conversation.recording.recordingLayout",
        scopes: &[Scope::Template, Scope::Account],
        // COMPOSED is the default once composition exists (step 6); until then it is refused.
        kind: ValueKind::OneOf(&["RAW_TRACKS"]),
        default: "\"RAW_TRACKS\"",
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

/// Checks a whole change for `scope`; returns the (name, JSON value) pairs to store, or the
/// first error (nothing is stored then).
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
            let valid = match p.kind {
                ValueKind::Bool => value.is_boolean(),
                ValueKind::OneOf(values) => value.as_str().is_some_and(|v| values.contains(&v)),
            };
            if !valid {
                return Err(ConfigError::InvalidValue {
                    name: name.clone(),
                    value: value.to_string(),
                    allowed: allowed_values(p.kind),
                });
            }
            Ok((name.clone(), value.to_string()))
        })
        .collect()
}

fn allowed_values(kind: ValueKind) -> String {
    match kind {
        ValueKind::Bool => "true or false".to_owned(),
        ValueKind::OneOf(values) => values.join(", "),
    }
}

/// A property's value resolved through the scopes, most specific first: each slice holds the
/// (name, JSON value) pairs set in one scope. Falls back to the built-in default.
pub fn resolve(name: &str, scopes: &[&[(String, String)]]) -> Value {
    scopes
        .iter()
        .find_map(|set| set.iter().find(|(n, _)| n == name))
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .or_else(|| property(name).and_then(|p| serde_json::from_str(p.default).ok()))
        .unwrap_or(Value::Null)
}

/// Whether a conversation is recorded (SPEC §2): both switches on.
pub fn recording_enabled(scopes: &[&[(String, String)]]) -> bool {
    resolve("messenger.recordingEnabled", scopes) == Value::Bool(true)
        && resolve("conversation.recording.recordingEnabled", scopes) == Value::Bool(true)
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
        assert!(recording_enabled(&[&set]));
        assert!(!recording_enabled(&[&set[..1]]));
    }

    #[test]
    fn errors_name_the_property_the_value_and_what_is_allowed() {
        let e = validate_change(
            Scope::Account,
            &change(json!({"messenger.recordingEnabled": "yes"})),
        )
        .expect_err("a string is not a bool");
        assert_eq!(
            e.to_string(),
            "property 'messenger.recordingEnabled' cannot be \"yes\"; allowed: true or false"
        );
        let e = validate_change(
            Scope::Template,
            &change(json!({"messenger.recordingEnabled": true})),
        )
        .expect_err("account only");
        assert!(
            e.to_string().contains("cannot be set in scope TEMPLATE"),
            "{e}"
        );
        let e = validate_change(Scope::Account, &change(json!({"nope": 1}))).expect_err("unknown");
        assert!(e.to_string().starts_with("unknown property 'nope'"), "{e}");
        let e = validate_change(
            Scope::Account,
            &change(json!({"conversation.recording.recordingLayout": "COMPOSED"})),
        )
        .expect_err("composition comes in step 6");
        assert!(e.to_string().ends_with("allowed: RAW_TRACKS"), "{e}");
    }

    #[test]
    fn the_most_specific_scope_wins_and_defaults_fill_in() {
        let account = vec![(
            "conversation.recording.recordingEnabled".to_owned(),
            "true".to_owned(),
        )];
        let template = vec![(
            "conversation.recording.recordingEnabled".to_owned(),
            "false".to_owned(),
        )];
        assert_eq!(
            resolve(
                "conversation.recording.recordingEnabled",
                &[&template, &account]
            ),
            json!(false)
        );
        assert_eq!(
            resolve("conversation.recording.recordingEnabled", &[&account]),
            json!(true)
        );
        assert_eq!(
            resolve("messenger.recordingEnabled", &[&account]),
            json!(false)
        );
    }
}
