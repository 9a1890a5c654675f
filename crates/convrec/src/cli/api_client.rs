//! A small client of convrec's web API for the commands that drive a server (participant, demo).

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one server with one bearer credential.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A refused request: its status and the server's `{code, message}`.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {status} {code}: {message}")]
pub struct Refused {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The status.
    pub status: StatusCode,
    /// The stable code.
    pub code: String,
    /// The message.
    pub message: String,
    /// The details.
    pub details: Value,
}

impl ApiClient {
    /// A client of the server at `base` (`http://host:port`) using `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A JSON request; the JSON answer (`null` for an empty one).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}: the server does not answer"))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{method} {path}: the answer is not JSON"))?
        };
        if !status.is_success() {
            return Err(Refused {
                method,
                path: path.to_owned(),
                status,
                code: value["code"].as_str().unwrap_or("").to_owned(),
                message: value["message"].as_str().unwrap_or("").to_owned(),
                details: value["details"].clone(),
            }
            .into());
        }
        Ok(value)
    }

    /// Sends an SDP offer; returns the `Location` and the SDP answer.
    pub async fn offer(&self, path: &str, offer: String) -> anyhow::Result<(String, String)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer)
            .send()
            .await
            .with_context(|| format!("POST {path}: the server does not answer"))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        if status != StatusCode::CREATED {
            bail!("POST {path}: {status}: {body}");
        }
        let location = location.with_context(|| format!("POST {path}: no Location"))?;
        Ok((location, body))
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("DELETE {path}: {}", response.status());
        }
        Ok(())
    }
}
