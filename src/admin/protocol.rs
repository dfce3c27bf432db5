//! The admin wire format: one JSON request per line, one JSON response per line, in order.
//! `PROTOCOL.md` is the same contract written for operators and client authors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request line: `{"id": 7, "cmd": "stats", "args": {...}}`. `id` is optional and echoed
/// back; `args` is optional for commands without arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Anything the client wants echoed, to match pipelined responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The command, e.g. `stats` or `plugin.load`.
    pub cmd: String,
    /// The command's arguments, an object.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
    /// The namespace the command runs in (`Store::namespace`); absent: the default one.
    /// Commands that write create the namespace at its first use; the others refuse an
    /// unknown one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<String>,
}

/// Why a request failed, as a stable code clients can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The line is not JSON, or not a request object.
    BadJson,
    /// The command does not exist.
    UnknownCommand,
    /// The arguments are missing, of the wrong type, or invalid.
    BadArgs,
    /// The item, user, plugin or slot does not exist.
    NotFound,
    /// The line is longer than the server's limit; the connection is closed.
    TooLarge,
    /// The request did not arrive in time; the connection is closed.
    Timeout,
    /// Too many connections; this one is closed.
    Busy,
    /// The server is shutting down.
    ShuttingDown,
    /// The store refused or failed the operation; the message says why and what to do.
    Failed,
    /// The server follows a leader (`recostore serve --follow`) and is read-only: write to
    /// the leader.
    ReadOnly,
    /// A namespace quota refused the write, and nothing of it was stored; the message says
    /// which quota, and when an events quota has room again.
    Quota,
}

/// An error response's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub code: Code,
    /// What went wrong and what to do next.
    pub message: String,
}

/// One response line: `{"id": 7, "ok": true, "result": {...}}` or
/// `{"id": 7, "ok": false, "error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success.
    pub fn ok(id: Option<Value>, result: Value) -> Response {
        Response {
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failure.
    pub fn err(id: Option<Value>, code: Code, message: impl Into<String>) -> Response {
        Response {
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }

    /// The response as one line, newline included.
    pub fn line(&self) -> Vec<u8> {
        // Serialising these types cannot fail (string keys, no non-finite floats reach here
        // unconverted: serde_json writes them as null).
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"ok":false,"error":{"code":"failed","message":"response not serialisable"}}"#
                .to_vec()
        });
        v.push(b'\n');
        v
    }
}
