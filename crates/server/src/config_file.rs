//! The server's settings (SPEC §7): the TOML config file's keys, the same keys set by flags and
//! the environment over them, and their checks into a [`ServerConfig`]. Free of I/O (reading
//! the file and the environment is the binary's part), so any config file can be fuzzed.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::ServerConfig;
use crate::cluster::ClusterSettings;
use crate::destinations::{DestinationPolicy, IpRange};
use crate::limits::Limits;
use crate::turn::TurnSettings;
use crate::upload::UploadSettings;

/// Why the settings were refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file is not TOML of the known keys.
    #[error("{0}")]
    Parse(String),
    /// A setting's value is not allowed.
    #[error("{setting}: {why}")]
    Invalid {
        /// The key, and its flag (`limits.max_body_kib (--max-body-kib)`).
        setting: &'static str,
        /// What is wrong and what is allowed.
        why: String,
    },
}

fn invalid(setting: &'static str, why: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Invalid {
        setting,
        why: why.into(),
    }
}

/// The settings as keys: a config file, or the flags and environment in the same shape.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `listen`.
    pub listen: Option<SocketAddr>,
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `node_id`.
    pub node_id: Option<String>,
    /// `node_url`.
    pub node_url: Option<String>,
    /// `node_lease_secs`.
    pub node_lease_secs: Option<u64>,
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[object_store]`.
    #[serde(default)]
    pub object_store: ObjectStoreSection,
    /// `media_listen`.
    pub media_listen: Option<SocketAddr>,
    /// `media_advertise`.
    pub media_advertise: Option<SocketAddr>,
    /// `public_url`.
    pub public_url: Option<String>,
    /// `recorder_command`.
    pub recorder_command: Option<String>,
    /// `recording_api_key_id` (`conversation.recording.recordingApiKeyId`).
    pub recording_api_key_id: Option<String>,
    /// `[turn]`.
    #[serde(default)]
    pub turn: TurnSection,
    /// `[webhooks]`.
    #[serde(default)]
    pub webhooks: WebhooksSection,
    /// `[limits]`.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `trusted_proxies`.
    pub trusted_proxies: Option<Vec<String>>,
}

/// `[limits]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// `limits.max_body_kib`.
    pub max_body_kib: Option<u64>,
    /// `limits.max_connections`.
    pub max_connections: Option<u64>,
    /// `limits.failed_auth_per_minute`.
    pub failed_auth_per_minute: Option<u64>,
    /// `limits.recordings_per_account`.
    pub recordings_per_account: Option<u64>,
}

/// `[webhooks]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// `webhooks.allow`.
    pub allow: Option<Vec<String>>,
    /// `webhooks.deny`.
    pub deny: Option<Vec<String>>,
}

/// `[turn]` (the secret only from the environment).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSection {
    /// `turn.url`.
    pub url: Option<String>,
    /// `turn.force_relay`.
    pub force_relay: Option<bool>,
}

/// `[database]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `database.url`.
    pub url: Option<String>,
}

/// `[object_store]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSection {
    /// `object_store.url`.
    pub url: Option<String>,
    /// `object_store.part_size_mib`.
    pub part_size_mib: Option<u64>,
    /// `object_store.max_backlog_mib`.
    pub max_backlog_mib: Option<u64>,
}

/// What only the environment or the machine gives: secrets and this program.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `CONVREC_BOOTSTRAP_ADMIN_KEY`.
    pub bootstrap_admin_key: Option<String>,
    /// `CONVREC_TURN_SECRET`.
    pub turn_secret: Option<String>,
    /// The program recorders are launched as.
    pub recorder_program: PathBuf,
}

impl ConfigFile {
    /// Reads a config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigFileError> {
        toml::from_str(text).map_err(|e| ConfigFileError::Parse(e.to_string()))
    }

    /// These settings, with `lower`'s where these have none (flags over the file).
    pub fn over(self, lower: ConfigFile) -> ConfigFile {
        ConfigFile {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            node_id: self.node_id.or(lower.node_id),
            node_url: self.node_url.or(lower.node_url),
            node_lease_secs: self.node_lease_secs.or(lower.node_lease_secs),
            database: DatabaseSection {
                url: self.database.url.or(lower.database.url),
            },
            object_store: ObjectStoreSection {
                url: self.object_store.url.or(lower.object_store.url),
                part_size_mib: self
                    .object_store
                    .part_size_mib
                    .or(lower.object_store.part_size_mib),
                max_backlog_mib: self
                    .object_store
                    .max_backlog_mib
                    .or(lower.object_store.max_backlog_mib),
            },
            media_listen: self.media_listen.or(lower.media_listen),
            media_advertise: self.media_advertise.or(lower.media_advertise),
            public_url: self.public_url.or(lower.public_url),
            recorder_command: self.recorder_command.or(lower.recorder_command),
            recording_api_key_id: self.recording_api_key_id.or(lower.recording_api_key_id),
            turn: TurnSection {
                url: self.turn.url.or(lower.turn.url),
                force_relay: self.turn.force_relay.or(lower.turn.force_relay),
            },
            webhooks: WebhooksSection {
                allow: self.webhooks.allow.or(lower.webhooks.allow),
                deny: self.webhooks.deny.or(lower.webhooks.deny),
            },
            limits: LimitsSection {
                max_body_kib: self.limits.max_body_kib.or(lower.limits.max_body_kib),
                max_connections: self.limits.max_connections.or(lower.limits.max_connections),
                failed_auth_per_minute: self
                    .limits
                    .failed_auth_per_minute
                    .or(lower.limits.failed_auth_per_minute),
                recordings_per_account: self
                    .limits
                    .recordings_per_account
                    .or(lower.limits.recordings_per_account),
            },
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
        }
    }

    /// The checked settings, with the defaults for what is not set.
    pub fn resolve(self, env: Environment) -> Result<ServerConfig, ConfigFileError> {
        if let Some(url) = &self.public_url {
            check_url("identifier.recordingEntryPointBaseUrl (--public-url)", url)?;
        }
        Ok(ServerConfig {
            listen: self
                .listen
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("./convrec-data")),
            database_url: match self.database.url {
                Some(url)
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
                {
                    return Err(invalid(
                        "database.url (--database-url)",
                        "must be a postgres:// or postgresql:// URL; leave it out for SQLite in the data directory",
                    ));
                }
                url => url,
            },
            object_store_url: self.object_store.url,
            upload: upload_settings(
                self.object_store.part_size_mib,
                self.object_store.max_backlog_mib,
            )?,
            node_id: self.node_id,
            cluster: cluster_settings(self.node_url, self.node_lease_secs)?,
            media_listen: self.media_listen,
            media_advertise: self.media_advertise,
            public_url: self.public_url,
            recorder_program: env.recorder_program,
            recorder_command: match self.recorder_command {
                Some(command) if command.trim().is_empty() => {
                    return Err(invalid(
                        "recorder_command (--recorder-command)",
                        "cannot be empty; leave it out to run recorders as child processes",
                    ));
                }
                command => command,
            },
            recording_api_key_id: match self.recording_api_key_id {
                Some(id)
                    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    return Err(invalid(
                        "conversation.recording.recordingApiKeyId (recording_api_key_id, --recording-api-key-id)",
                        "must be the id of a RECORDER API key (POST /v1/apikeys), without spaces; leave it out to let the entry point be recorders' only credential",
                    ));
                }
                id => id,
            },
            bootstrap_admin_key: env.bootstrap_admin_key,
            webhook_destinations: DestinationPolicy {
                allow: ranges("webhooks.allow (--webhook-allow)", self.webhooks.allow)?,
                deny: ranges("webhooks.deny (--webhook-deny)", self.webhooks.deny)?,
            },
            turn: turn_settings(
                self.turn.url,
                env.turn_secret,
                self.turn.force_relay.unwrap_or(false),
            )?,
            limits: limits(self.limits, self.trusted_proxies)?,
        })
    }
}

fn check_url(setting: &'static str, url: &str) -> Result<(), ConfigFileError> {
    let kind = convrec_core::config::ValueKind::Url;
    convrec_core::config::check_value(kind, &serde_json::Value::from(url))
        .map_err(|allowed| invalid(setting, format!("cannot be '{url}'; allowed: {allowed}")))
}

fn limits(
    limits: LimitsSection,
    trusted_proxies: Option<Vec<String>>,
) -> Result<Limits, ConfigFileError> {
    let defaults = Limits::default();
    Ok(Limits {
        max_body_bytes: limit::<usize>(
            "limits.max_body_kib (--max-body-kib)",
            limits.max_body_kib,
            64..=65536,
            defaults.max_body_bytes as u64 >> 10,
        )? << 10,
        max_connections: limit(
            "limits.max_connections (--max-connections)",
            limits.max_connections,
            16..=1_000_000,
            defaults.max_connections as u64,
        )?,
        failed_auth_per_minute: limit(
            "limits.failed_auth_per_minute (--max-failed-auth-per-minute)",
            limits.failed_auth_per_minute,
            1..=100_000,
            defaults.failed_auth_per_minute.into(),
        )?,
        recordings_per_account: limit(
            "limits.recordings_per_account (--max-recordings-per-account)",
            limits.recordings_per_account,
            1..=100_000,
            defaults.recordings_per_account.into(),
        )?,
        trusted_proxies: ranges("trusted_proxies (--trusted-proxies)", trusted_proxies)?,
    })
}

/// A limit's value, checked against its range, or its default; converted to what it counts in.
fn limit<T: TryFrom<u64>>(
    setting: &'static str,
    value: Option<u64>,
    allowed: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<T, ConfigFileError> {
    let value = value.unwrap_or(default);
    if !allowed.contains(&value) {
        return Err(invalid(
            setting,
            format!(
                "cannot be {value}; allowed: {} to {}",
                allowed.start(),
                allowed.end()
            ),
        ));
    }
    T::try_from(value).map_err(|_| invalid(setting, format!("cannot be {value} on this machine")))
}

/// Address ranges, checked.
fn ranges(
    setting: &'static str,
    texts: Option<Vec<String>>,
) -> Result<Vec<IpRange>, ConfigFileError> {
    texts
        .unwrap_or_default()
        .iter()
        .map(|t| t.parse().map_err(|why: String| invalid(setting, why)))
        .collect()
}

/// Comma-separated address ranges, as a flag or an environment variable gives them.
pub fn split_ranges(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The TURN settings, checked: a relay needs its secret, forcing it needs a relay.
fn turn_settings(
    url: Option<String>,
    secret: Option<String>,
    force_relay: bool,
) -> Result<Option<TurnSettings>, ConfigFileError> {
    let Some(url) = url else {
        if force_relay {
            return Err(invalid(
                "turn.force_relay (--force-relay)",
                "needs a relay: set turn.url (--turn-url)",
            ));
        }
        return Ok(None);
    };
    let urls =
        crate::turn::check_urls(&url).map_err(|why| invalid("turn.url (--turn-url)", why))?;
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        invalid(
            "turn.url (--turn-url)",
            "needs the secret shared with the relay in CONVREC_TURN_SECRET",
        )
    })?;
    Ok(Some(TurnSettings {
        urls,
        secret,
        force_relay,
    }))
}

/// The cluster settings, checked.
fn cluster_settings(
    node_url: Option<String>,
    node_lease_secs: Option<u64>,
) -> Result<ClusterSettings, ConfigFileError> {
    if let Some(url) = &node_url {
        check_url("node_url (--node-url)", url)?;
    }
    let lease = match node_lease_secs {
        Some(secs @ 2..=300) => std::time::Duration::from_secs(secs),
        Some(secs) => {
            return Err(invalid(
                "node_lease_secs (--node-lease-secs)",
                format!("cannot be {secs}; allowed: 2 to 300 seconds"),
            ));
        }
        None => ClusterSettings::default().lease,
    };
    Ok(ClusterSettings { node_url, lease })
}

/// The upload settings from MiB figures, checked.
fn upload_settings(
    part_size_mib: Option<u64>,
    max_backlog_mib: Option<u64>,
) -> Result<UploadSettings, ConfigFileError> {
    let defaults = UploadSettings::default();
    let part_size = match part_size_mib {
        Some(mib @ 5..=5120) => mib << 20,
        Some(mib) => {
            return Err(invalid(
                "object_store.part_size_mib (--part-size-mib)",
                format!("cannot be {mib}; allowed: 5 to 5120 (the part sizes S3 takes)"),
            ));
        }
        None => defaults.part_size,
    };
    let max_backlog = match max_backlog_mib {
        Some(mib) if mib >= part_size >> 20 && mib <= 1 << 30 => mib << 20,
        Some(mib) => {
            return Err(invalid(
                "object_store.max_backlog_mib (--max-backlog-mib)",
                format!(
                    "cannot be {mib}; allowed: from the part size ({} MiB) to 1073741824",
                    part_size >> 20
                ),
            ));
        }
        None => defaults.max_backlog.max(part_size),
    };
    Ok(UploadSettings {
        part_size,
        max_backlog,
    })
}

/// The fuzz harness of config files (`fuzz/fuzz_targets/config_file.rs`): any text is refused
/// with an error or resolves to settings within their ranges; it never panics.
#[doc(hidden)]
pub fn fuzz_config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::parse(text) else {
        return;
    };
    let env = Environment {
        bootstrap_admin_key: None,
        turn_secret: Some("fuzz".into()),
        recorder_program: PathBuf::from("convrec"),
    };
    if let Ok(config) = file.clone().over(ConfigFile::default()).resolve(env) {
        assert!(config.upload.part_size <= config.upload.max_backlog);
        assert!((64 << 10..=65536 << 10).contains(&config.limits.max_body_bytes));
        assert!(config.limits.failed_auth_per_minute >= 1);
        assert_eq!(config.public_url, file.public_url);
    }
}
