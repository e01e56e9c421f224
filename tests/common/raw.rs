//! A Streamable HTTP session driven by hand over plain HTTP, to see what
//! the front puts on the wire.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::messages;

/// Longest a single exchange may take before the test fails as hung (the
/// behaviour under test is that nothing hangs).
pub const HUNG: Duration = Duration::from_secs(60);

/// A Streamable HTTP session driven by hand: POSTs only, no GET stream.
pub struct Raw {
    pub http: reqwest::Client,
    pub url: String,
    pub session: String,
}

impl Raw {
    /// A session whose client declares elicitation, sampling and roots.
    pub async fn open(url: &str) -> Raw {
        Raw::open_with(
            url,
            json!({ "elicitation": {}, "sampling": {}, "roots": {} }),
        )
        .await
    }

    /// A session whose client declares `capabilities`.
    pub async fn open_with(url: &str, capabilities: Value) -> Raw {
        let http = reqwest::Client::new();
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": capabilities,
                "clientInfo": { "name": "raw-http", "version": "0" }
            }
        });
        let response = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .expect("initialize");
        assert!(response.status().is_success(), "{}", response.status());
        let session = response
            .headers()
            .get("mcp-session-id")
            .expect("a session id")
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        assert!(
            messages(&body)
                .iter()
                .any(|m| m["id"] == 0 && m["result"].is_object()),
            "{body}"
        );
        let raw = Raw {
            http,
            url: url.to_owned(),
            session,
        };
        let accepted = raw
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(accepted.status(), 202);
        raw
    }

    /// POSTs one message on the session.
    pub async fn post(&self, message: &Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(message)
            .send()
            .await
            .expect("POST /mcp")
    }

    /// Calls `tool` and reads its response stream to the end, answering
    /// every request the server sends on it with `answer`. Returns every
    /// message the stream carried, in order.
    pub async fn call(
        &self,
        id: u64,
        tool: &str,
        arguments: Value,
        progress_token: Option<&str>,
        answer: impl Fn(&Value) -> Value,
    ) -> Vec<Value> {
        let mut params = json!({ "name": tool, "arguments": arguments });
        if let Some(token) = progress_token {
            params["_meta"] = json!({ "progressToken": token });
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        let exchange = async {
            let response = self.post(&request).await;
            assert!(response.status().is_success(), "{}", response.status());
            let mut seen = Vec::new();
            let mut buffer = String::new();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    for message in messages(&event) {
                        if message["method"].is_string() && !message["id"].is_null() {
                            let reply = json!({
                                "jsonrpc": "2.0",
                                "id": message["id"],
                                "result": answer(&message),
                            });
                            let accepted = self.post(&reply).await;
                            assert_eq!(accepted.status(), 202, "answer to {message}");
                        }
                        let done = message["id"] == id && message.get("method").is_none();
                        seen.push(message);
                        if done {
                            return seen;
                        }
                    }
                }
            }
            // A plain JSON answer has no blank-line framing.
            seen.extend(messages(&buffer));
            seen
        };
        tokio::time::timeout(HUNG, exchange)
            .await
            .unwrap_or_else(|_| panic!("{tool}: no answer on the call's stream within {HUNG:?}"))
    }
}
