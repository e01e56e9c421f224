//! The lane's parse of a client's message.
//!
//! The SDK's `ClientJsonRpcMessage` is parsed by buffering the message and
//! trying each kind of message, then each of some twenty kinds of request
//! in turn, each failed try making an error value: for a `tools/call`,
//! most of what a parse costs. Here a `tools/call` request is recognized
//! first (its `method`, and the keys that make it a request: `id`, and
//! neither `result` nor `error`, as the SDK checks them) and parsed straight
//! into its own type; anything else, or a `tools/call` that does not parse
//! so, goes through the SDK's enum. Either way the result is the SDK's
//! (tests compare the two on every kind of message).

use std::borrow::Cow;

use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, JsonRpcRequest,
};
use serde::{Deserialize, Deserializer};

/// `bytes` as the SDK would parse them, or `None` if they are not a
/// client's JSON-RPC message.
pub fn client_message(bytes: &[u8]) -> Option<ClientJsonRpcMessage> {
    match tool_call(bytes) {
        Some(call) => Some(JsonRpcMessage::Request(call)),
        None => serde_json::from_slice(bytes).ok(),
    }
}

/// A `tools/call` request parsed into its type, or `None` to leave the
/// message to the SDK's parse.
fn tool_call(bytes: &[u8]) -> Option<JsonRpcRequest<ClientRequest>> {
    let head: Head<'_> = serde_json::from_slice(bytes).ok()?;
    let request = head.id.0 && !head.result.0 && !head.error.0;
    if !request || head.method.as_deref() != Some("tools/call") {
        return None;
    }
    let call: JsonRpcRequest<CallToolRequest> = serde_json::from_slice(bytes).ok()?;
    Some(JsonRpcRequest {
        jsonrpc: call.jsonrpc,
        id: call.id,
        request: ClientRequest::CallToolRequest(call.request),
    })
}

/// What tells a message's kind; other keys are skipped unread. A key that
/// occurs twice fails the parse (and the message goes to the SDK).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Present,
    #[serde(default)]
    result: Present,
    #[serde(default)]
    error: Present,
}

/// Whether a key is there, whatever its value (`null` included, as the
/// SDK counts it).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The SDK's own parse.
    fn sdk(bytes: &[u8]) -> Option<ClientJsonRpcMessage> {
        serde_json::from_slice(bytes).ok()
    }

    fn same(bytes: &[u8]) {
        let ours = client_message(bytes).map(|m| serde_json::to_value(m).unwrap());
        let theirs = sdk(bytes).map(|m| serde_json::to_value(m).unwrap());
        assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(bytes));
    }

    fn calls() -> Vec<Value> {
        let ids = [
            json!(1),
            json!(0),
            json!(-7),
            json!("a-1"),
            json!(""),
            json!(1.5),
        ];
        let params = [
            json!({"name": "echo", "arguments": {"text": "hello"}}),
            json!({"name": "echo"}),
            json!({"name": "echo", "arguments": null}),
            json!({"name": "vm_start", "arguments": {"n": 18446744073709551615u64, "m": -9223372036854775807i64, "f": 0.1, "s": "\u{e9}\u{1F600}", "deep": {"a": [1, {"b": null}]}}}),
            json!({"name": "echo", "arguments": {}, "_meta": {"progressToken": 3}}),
            json!({"name": "echo", "arguments": {}, "_meta": {"progressToken": "p", "other": [1]}}),
            json!({"name": "echo", "arguments": {}, "extra": true}),
            json!({"name": "echo", "arguments": {}, "task": {"ttl": 1000}}),
            json!({"name": 5}),
            json!({"arguments": {}}),
            json!({"name": "echo", "arguments": "text"}),
            json!({"name": "echo", "arguments": [1, 2]}),
            json!([1, 2]),
            json!(null),
            json!("tools"),
        ];
        let mut messages = Vec::new();
        for id in &ids {
            for p in &params {
                messages
                    .push(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": p}));
            }
        }
        let call = json!({"name": "echo", "arguments": {"text": "hi"}});
        messages.extend([
            // Not requests, or not tools/call.
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": call}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
            json!({"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": call}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call, "result": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call, "result": null}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call, "error": {"code": 1, "message": "x"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call, "extra": [1]}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "tools/call", "params": call}),
            json!({"id": 1, "method": "tools/call", "params": call}),
            json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/call", "params": call}),
            json!({"jsonrpc": "2.0", "id": 1, "method": null, "params": call}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 7, "params": call}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "c"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "custom/thing", "params": {"a": 1}}),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "r"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}),
            json!({"jsonrpc": "2.0"}),
            json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}]),
            json!(null),
            json!("tools/call"),
        ]);
        messages
    }

    #[test]
    fn every_message_parses_as_the_sdk_parses_it() {
        let mut fast = 0;
        for message in calls() {
            let bytes = serde_json::to_vec(&message).unwrap();
            same(&bytes);
            fast += usize::from(tool_call(&bytes).is_some());
        }
        // The valid calls took the direct parse (and were compared above).
        assert!(fast >= 40, "{fast} calls parsed directly");
    }

    #[test]
    fn text_the_value_model_cannot_hold_parses_as_the_sdk_parses_it() {
        let call = r#""params":{"name":"echo","arguments":{"text":"hi"}}"#;
        for text in [
            // A key twice.
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call",{call},"id":2}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping",{call}}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call",{call}}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#
                .to_owned(),
            // Escapes in the method and the keys.
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools\/call",{call}}}"#),
            format!(r#"{{"jsonrpc":"2.0","\u0069d":1,"method":"tools/call",{call}}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call",{call},"r\u0065sult":{{}}}}"#),
            // Numbers beyond 64 bits, and malformed text.
            format!(r#"{{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call",{call}}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"n":1e400}}}"#.to_owned(),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call",{call}"#),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call",{call}}} trailing"#),
            String::new(),
        ] {
            same(text.as_bytes());
        }
    }
}
