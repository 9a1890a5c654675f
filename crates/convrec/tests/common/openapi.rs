//! The server's own OpenAPI document, as a client reads it: operations found by `operationId`,
//! and every answer checked against what the document says about it (its status is listed, its
//! JSON body matches the schema).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use serde_json::Value;

/// `GET /v1/openapi.json` of a running server.
pub struct OpenApi {
    document: Value,
}

impl OpenApi {
    /// Fetches the document (no credentials needed).
    pub async fn fetch(http: &reqwest::Client, base: &str) -> Self {
        let response = http
            .get(format!("{base}/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        Self { document }
    }

    /// Every `(METHOD, path)` the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (path, item) in self.document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
        operations
    }

    /// `(METHOD, path template)` of the operation with this `operationId`.
    pub fn operation(&self, operation_id: &str) -> (String, String) {
        for (path, item) in self.document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation["operationId"] == operation_id {
                    return (method.to_uppercase(), path.clone());
                }
            }
        }
        panic!("the OpenAPI document has no operation '{operation_id}'")
    }

    /// What is wrong with an answer of `METHOD path` (a path template) according to the
    /// document: a status it does not list, or a JSON body its schema rejects. None if it fits.
    pub fn mismatch(&self, method: &str, path: &str, status: u16, body: &Value) -> Option<String> {
        let operation = &self.document["paths"][path][method.to_lowercase()];
        if operation.is_null() {
            return Some(format!("{method} {path} is not in the document"));
        }
        let response = &operation["responses"][status.to_string()];
        if response.is_null() {
            return Some(format!(
                "{method} {path} answered {status}, which it does not list"
            ));
        }
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            return None;
        }
        let mut root = schema.clone();
        root["components"] = self.document["components"].clone();
        let validator = jsonschema::draft202012::new(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        (!errors.is_empty()).then(|| {
            format!(
                "{method} {path} {status}: the body does not match its schema: {}\n{body}",
                errors.join("; ")
            )
        })
    }
}
