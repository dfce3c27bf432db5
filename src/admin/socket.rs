//! Binding the admin socket safely: owner-only from the first instant, and never over a live
//! server's socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::error::{Error, Result};

fn refused(path: &Path, why: String) -> Error {
    Error::io(
        "binding admin socket",
        path,
        std::io::Error::new(std::io::ErrorKind::AddrInUse, why),
    )
}

/// Bind a listener at `path` with mode 0600.
///
/// The socket is bound inside a fresh directory of mode 0700 beside `path`, set to 0600, and
/// renamed into place, so there is no moment when another user could connect. An existing
/// socket at `path` that accepts a connection belongs to a live server and is left alone (an
/// error); one that refuses is stale and is replaced. Anything else at `path` is left alone.
pub(super) fn bind(path: &Path) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(refused(
                path,
                "a file that is not a socket is in the way; remove it or pick another socket path"
                    .into(),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(refused(
                path,
                "a live admin server is listening there; stop it first or pick another socket path"
                    .into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| Error::io("removing stale admin socket", path, e))?;
        tracing::info!(socket = %path.display(), "replaced a stale admin socket");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| refused(path, "the socket path has no file name".into()))?;
    let private = parent.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private)
        .map_err(|e| Error::io("creating admin socket directory", &private, e))?;
    let cleanup = |e: Error| {
        let _ = std::fs::remove_dir_all(&private);
        e
    };
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| cleanup(Error::io("securing admin socket directory", &private, e)))?;
    let tmp = private.join("s");
    let listener = UnixListener::bind(&tmp).map_err(|e| {
        cleanup(Error::io(
            "binding admin socket (paths are limited to about 100 bytes)",
            path,
            e,
        ))
    })?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| cleanup(Error::io("securing admin socket", &tmp, e)))?;
    std::fs::rename(&tmp, path).map_err(|e| cleanup(Error::io("placing admin socket", path, e)))?;
    let _ = std::fs::remove_dir(&private);
    Ok(listener)
}
