//! A server in this process, and conversations on it with their participants: what `demo` and
//! `bench-ready` run on.

use std::path::PathBuf;

use anyhow::Context;
use convrec_server::{Server, ServerConfig, ServerError};
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::ApiClient;

/// The running server.
pub struct LocalDeployment {
    /// The server's URL.
    pub base: String,
    admin: ApiClient,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), ServerError>>,
}

/// A conversation of a new account.
pub struct LocalConversation {
    /// Its account.
    pub account_id: String,
    /// Its id.
    pub id: String,
    /// Its participants' tokens; the first is the assigned agent's.
    pub tokens: Vec<String>,
}

impl LocalDeployment {
    /// Starts a server on `data_dir`: loopback, free ports, recorders as child processes of
    /// this program.
    pub async fn start(data_dir: PathBuf) -> anyhow::Result<Self> {
        let admin_key = random_key()?;
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("bug: a valid address"),
            data_dir,
            database_url: None,
            object_store_url: None,
            media_listen: None,
            media_advertise: None,
            public_url: None,
            recorder_program: std::env::current_exe()
                .context("cannot find this program to launch recorders with")?,
            recorder_command: None,
            recording_api_key_id: None,
            bootstrap_admin_key: Some(admin_key.clone()),
            node_id: None,
            upload: Default::default(),
            cluster: Default::default(),
            turn: None,
            // The demo's own loopback receivers, if any.
            webhook_destinations: convrec_server::destinations::DestinationPolicy {
                allow: vec!["127.0.0.0/8".parse().expect("bug: a valid range")],
                deny: Vec::new(),
            },
            limits: Default::default(),
        };
        let server = Server::bind(&config).await?;
        let base = format!("http://{}", server.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let admin = ApiClient::new(&base, &admin_key);
        Ok(Self {
            base,
            admin,
            stop,
            serving,
        })
    }

    /// A new account (recording on or off), a conversation in it and `participants` people.
    pub async fn conversation(
        &self,
        recording: bool,
        participants: u32,
        layout: &str,
    ) -> anyhow::Result<LocalConversation> {
        let account = self
            .admin
            .json(
                Method::POST,
                "/v1/accounts",
                Some(json!({ "name": "demo" })),
            )
            .await?;
        let account_id = text(&account, "id")?;
        self.set_recording(&account_id, recording, layout).await?;
        let conversation = self
            .admin
            .json(
                Method::POST,
                "/v1/conversations",
                Some(json!({ "accountId": account_id, "topic": "convrec demo" })),
            )
            .await?;
        let id = text(&conversation, "id")?;
        let mut tokens = Vec::new();
        for n in 0..participants {
            let role = if n == 0 { "ASSIGNED_AGENT" } else { "VISITOR" };
            let p = self
                .admin
                .json(
                    Method::POST,
                    &format!("/v1/conversations/{id}/participants"),
                    Some(json!({ "name": format!("participant {}", n + 1), "role": role })),
                )
                .await?;
            tokens.push(text(&p, "token")?);
        }
        Ok(LocalConversation {
            account_id,
            id,
            tokens,
        })
    }

    /// Turns an account's recording on or off (both switches of SPEC §2), with `layout`
    /// (`COMPOSED` or `RAW_TRACKS`).
    pub async fn set_recording(
        &self,
        account_id: &str,
        on: bool,
        layout: &str,
    ) -> anyhow::Result<()> {
        self.admin
            .json(
                Method::PUT,
                &format!("/v1/accounts/{account_id}/configuration"),
                Some(json!({ "properties": {
                    "messenger.recordingEnabled": on,
                    "conversation.recording.recordingEnabled": on,
                    "conversation.recording.recordingLayout": layout,
                }})),
            )
            .await?;
        Ok(())
    }

    /// Stops the server.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.serving.await??;
        Ok(())
    }
}

/// A text field of an API answer.
pub fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the server's answer has no '{field}': {value}"))
}

fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
