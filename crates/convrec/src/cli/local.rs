//! A server in this process with an account that records, one conversation and its
//! participants: what `demo` and `bench-ready` run on.

use std::path::PathBuf;

use anyhow::Context;
use convrec_server::{Server, ServerConfig, ServerError};
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::ApiClient;

/// The running deployment.
pub struct LocalDeployment {
    /// The server's URL.
    pub base: String,
    /// The conversation.
    pub conversation_id: String,
    /// Its participants' tokens; the first is the assigned agent's.
    pub tokens: Vec<String>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl LocalDeployment {
    /// Starts a server on `data_dir` (loopback, free ports, recorders as child processes of
    /// this program) and sets up the account, the conversation and `participants` people.
    pub async fn start(data_dir: PathBuf, participants: u32) -> anyhow::Result<Self> {
        let admin_key = random_key()?;
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("bug: a valid address"),
            data_dir,
            media_listen: None,
            public_url: None,
            recorder_program: std::env::current_exe()
                .context("cannot find this program to launch recorders with")?,
            bootstrap_admin_key: Some(admin_key.clone()),
        };
        let server = Server::bind(&config).await?;
        let base = format!("http://{}", server.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let admin = ApiClient::new(&base, &admin_key);
        let account = admin
            .json(
                Method::POST,
                "/v1/accounts",
                Some(json!({ "name": "demo" })),
            )
            .await?;
        let account_id = text(&account, "id")?;
        admin
            .json(
                Method::PUT,
                &format!("/v1/accounts/{account_id}/configuration"),
                Some(json!({ "properties": {
                    "messenger.recordingEnabled": true,
                    "conversation.recording.recordingEnabled": true,
                }})),
            )
            .await?;
        let conversation = admin
            .json(
                Method::POST,
                "/v1/conversations",
                Some(json!({ "accountId": account_id, "topic": "convrec demo" })),
            )
            .await?;
        let conversation_id = text(&conversation, "id")?;
        let mut tokens = Vec::new();
        for n in 0..participants {
            let role = if n == 0 { "ASSIGNED_AGENT" } else { "VISITOR" };
            let p = admin
                .json(
                    Method::POST,
                    &format!("/v1/conversations/{conversation_id}/participants"),
                    Some(json!({ "name": format!("participant {}", n + 1), "role": role })),
                )
                .await?;
            tokens.push(text(&p, "token")?);
        }
        Ok(Self {
            base,
            conversation_id,
            tokens,
            stop,
            serving,
        })
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
