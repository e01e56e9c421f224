//! Screening of `/mcp` POST bodies before the MCP transport sees them, so
//! that malformed input gets the status and JSON-RPC error the protocol
//! prescribes: 400 with `-32700` for a body that is not JSON, 400 with
//! `-32600` for JSON that is not one JSON-RPC message (batches included:
//! MCP removed them in 2025-06-18), 413 for an oversized body.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INTERNAL_ERROR: i64 = -32603;

/// `413` to a body over `max_body_bytes`.
pub fn too_large(max_body_bytes: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        INVALID_REQUEST,
        &format!("request body exceeds {max_body_bytes} bytes"),
    )
}

/// A JSON-RPC error response with `id: null`, as JSON.
pub fn error_response(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn screen(State(max_body_bytes): State<usize>, request: Request, next: Next) -> Response {
    if request.method() == Method::DELETE {
        let mut response = next.run(request).await;
        // The transport answers 202; a finished DELETE is 204 No Content.
        if response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        return response;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, max_body_bytes).await else {
        return too_large(max_body_bytes);
    };
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if is_json && let Some(problem) = problem(&bytes) {
        return problem;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn problem(bytes: &[u8]) -> Option<Response> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => {
            return Some(error_response(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                &format!("parse error: {error}"),
            ));
        }
    };
    let invalid = |message: &str| {
        Some(error_response(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            message,
        ))
    };
    match &value {
        Value::Array(_) => invalid(
            "JSON-RPC batches are not supported (MCP 2025-06-18 removed them); send one message per request",
        ),
        Value::Object(object) if object.get("jsonrpc") != Some(&json!("2.0")) => {
            invalid("invalid request: \"jsonrpc\" must be \"2.0\"")
        }
        Value::Object(object)
            if !object.contains_key("method")
                && !object.contains_key("result")
                && !object.contains_key("error") =>
        {
            invalid("invalid request: a JSON-RPC message needs \"method\", \"result\" or \"error\"")
        }
        Value::Object(_) => None,
        _ => invalid("invalid request: a JSON-RPC message is a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &str) -> Option<(StatusCode, i64)> {
        let response = problem(bytes.as_bytes())?;
        let status = response.status();
        let body = futures::executor::block_on(to_bytes(response.into_body(), 4096)).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        Some((status, value["error"]["code"].as_i64().unwrap()))
    }

    #[test]
    fn classifies_bad_bodies() {
        assert_eq!(code("{nope"), Some((StatusCode::BAD_REQUEST, PARSE_ERROR)));
        assert_eq!(code("[]"), Some((StatusCode::BAD_REQUEST, INVALID_REQUEST)));
        assert_eq!(code("42"), Some((StatusCode::BAD_REQUEST, INVALID_REQUEST)));
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","method":"x"}"#),
            Some((StatusCode::BAD_REQUEST, INVALID_REQUEST))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1}"#),
            Some((StatusCode::BAD_REQUEST, INVALID_REQUEST))
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
    }
}
