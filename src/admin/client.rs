//! A blocking admin client: one request, one response, over the Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::protocol::{Request, Response};
use crate::error::{Error, Result};

/// A connection to an admin socket.
#[derive(Debug)]
pub struct AdminClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    ns: Option<String>,
}

impl AdminClient {
    /// Send every later request to namespace `ns` (`None`: the default one); see
    /// `Request::ns`.
    pub fn set_namespace(&mut self, ns: Option<String>) {
        self.ns = ns;
    }

    /// Connect to the socket at `path`, with `timeout` on every read and write.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<AdminClient> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| {
            Error::io(
                "connecting to admin socket (is `recostore serve` running?)",
                path,
                e,
            )
        })?;
        let io = |e| Error::io("configuring admin connection", path, e);
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Ok(AdminClient {
            reader: BufReader::new(stream.try_clone().map_err(io)?),
            writer: stream,
            next_id: 1,
            ns: None,
        })
    }

    /// Send `cmd` with `args` and wait for its response.
    pub fn call(&mut self, cmd: &str, args: Value) -> Result<Response> {
        let req = Request {
            id: Some(Value::from(self.next_id)),
            cmd: cmd.to_string(),
            args,
            ns: self.ns.clone(),
        };
        self.next_id += 1;
        let mut line = serde_json::to_vec(&req).map_err(|e| Error::InvalidQuery {
            reason: format!("request not serialisable: {e}"),
        })?;
        line.push(b'\n');
        self.send_raw(&line)?;
        self.read_response()
    }

    /// Write raw bytes (for tests and `--raw`).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::io("writing to admin socket", "<socket>", e))
    }

    /// Read one response line.
    pub fn read_response(&mut self) -> Result<Response> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| Error::io("reading from admin socket", "<socket>", e))?;
        if n == 0 {
            return Err(Error::io(
                "reading from admin socket",
                "<socket>",
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            ));
        }
        serde_json::from_str(&line).map_err(|e| Error::InvalidQuery {
            reason: format!("the server sent a line that is not a response: {e}"),
        })
    }
}
