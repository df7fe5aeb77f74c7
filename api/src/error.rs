//! What a request can get wrong, or what can go wrong answering it: each
//! with its HTTP status and a stable code clients can branch on.

use serde::Serialize;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestError {
    #[serde(skip)]
    pub status: u16,
    /// Stable, documented in the OpenAPI document.
    pub code: &'static str,
    pub message: String,
    /// The parameter at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl RequestError {
    /// A 400 naming `parameter`.
    pub fn bad(code: &'static str, parameter: &str, message: impl Into<String>) -> RequestError {
        RequestError {
            status: 400,
            code,
            message: message.into(),
            parameter: Some(parameter.to_owned()),
        }
    }

    /// Any other status.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> RequestError {
        RequestError {
            status,
            code,
            message: message.into(),
            parameter: None,
        }
    }

    /// The JSON body: `{"error": {...}}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "error": self })).unwrap_or_default()
    }
}
