//! Reading a module from a path named by an operator or an author: a regular file only, and
//! never more than the size cap. `std::fs::read` would read `/dev/zero` until the process
//! died, and block for ever on a FIFO nobody writes to (holding a connection thread, and
//! with it a clean shutdown).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The bytes of the module at `path`, refused unless it is a regular file of at most
/// `max_bytes` bytes (`PluginLimits::max_module_bytes`).
pub fn read_module(path: &Path, max_bytes: usize) -> Result<Vec<u8>> {
    read_file(
        path,
        max_bytes,
        "a module",
        "PluginLimits::max_module_bytes",
    )
}

/// The bytes of `path` (`what` it should hold, for messages), refused unless it is a regular
/// file of at most `max_bytes` bytes (the cap named `cap`).
pub fn read_file(path: &Path, max_bytes: usize, what: &str, cap: &str) -> Result<Vec<u8>> {
    let refuse = |reason: String| Error::PluginRefused {
        reason: format!("cannot read {what} from {}: {reason}", path.display()),
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer appears; non-blocking, it returns at
    // once and the type check below refuses it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options
        .open(path)
        .map_err(|e| Error::io("opening plugin module", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading plugin module", path, e))?;
    if !meta.is_file() {
        return Err(refuse(
            "it is not a regular file (a device, FIFO or directory); give the path of a file"
                .into(),
        ));
    }
    if meta.len() > max_bytes as u64 {
        return Err(refuse(format!(
            "it is {} bytes, over the {max_bytes}-byte cap ({cap})",
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(crate::narrow::usize_from(meta.len()));
    // The file may grow between the check and the read: read one byte past the cap at most.
    file.take(max_bytes as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading plugin module", path, e))?;
    if buf.len() > max_bytes {
        return Err(refuse(format!(
            "it grew past the {max_bytes}-byte cap ({cap}) while read"
        )));
    }
    Ok(buf)
}
