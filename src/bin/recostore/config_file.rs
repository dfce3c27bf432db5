//! `recostore serve --config recostore.toml`: the serving process's settings in one file.
//!
//! `[serve]` holds what only the server has (the store directory, the socket, the admin
//! socket's limits); `[store]` is `recostore::Config` field for field, with its nested
//! `[store.event_weights]`, `[store.lifecycle]` and `[store.plugins]`. A key left out keeps
//! its default; a key the file should not have is an error naming it. `recostore.example.toml`
//! at the repository root lists every key with its default and meaning, and a test checks that
//! it does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use recostore::admin::AdminOptions;
use recostore::Config;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// The server's own settings.
    pub serve: Serve,
    /// The store's `Config`.
    pub store: Config,
}

/// `[serve]`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Serve {
    /// Store directory.
    pub dir: PathBuf,
    /// Admin socket path; default `<dir>/admin.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest request line, in bytes.
    pub max_line_bytes: usize,
    /// Seconds a connection may stay quiet before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a request line has to arrive whole (and a response to be taken).
    pub request_timeout_secs: u64,
}

impl Default for Serve {
    fn default() -> Self {
        let admin = AdminOptions::default();
        Serve {
            dir: PathBuf::from(crate::DEFAULT_DIR),
            socket: None,
            max_connections: admin.max_connections,
            max_line_bytes: admin.max_line_bytes,
            idle_timeout_secs: admin.idle_timeout.as_secs(),
            request_timeout_secs: admin.request_timeout.as_secs(),
        }
    }
}

impl Serve {
    /// The admin server's options from this section (the log-level hook is the caller's).
    pub fn admin_options(&self) -> AdminOptions {
        AdminOptions {
            max_connections: self.max_connections,
            max_line_bytes: self.max_line_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            ..AdminOptions::default()
        }
    }
}

/// Read and check the file at `path`.
pub fn read(path: &Path) -> Result<ConfigFile, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("config file {}: {e}", path.display()))?;
    // A FIFO or a device would block or never end; a real config is a few KiB.
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(format!(
            "config file {}: not a regular file of at most 1 MiB",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Parse a config file's text.
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recostore.example.toml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every key, dotted: what serde writes for the defaults.
    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() && !matches!(k.as_str(), "durability") {
                    keys(&p, v, out);
                } else {
                    out.push(p);
                }
            }
        }
    }

    /// The annotated example parses, and it names every key the file accepts (each set to
    /// its default, so the example also documents the defaults): a field added to `Config`
    /// and not to the example fails here.
    #[test]
    fn the_example_names_every_key_and_gives_the_defaults() {
        let text = example();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("the example: {e}"));
        let mut want = Vec::new();
        let defaults = toml::Value::try_from(ConfigFile::default()).expect("serialise");
        keys("", &defaults, &mut want);
        let mut got = Vec::new();
        let example: toml::Value = toml::from_str(&text).expect("toml");
        keys("", &example, &mut got);
        let missing: Vec<&String> = want.iter().filter(|k| !got.contains(k)).collect();
        assert!(missing.is_empty(), "the example lacks {missing:?}");
        // Apart from what depends on the machine, the example's values are the defaults.
        let mut as_written = toml::Value::try_from(&parsed).expect("serialise");
        let mut default = defaults;
        for v in [&mut as_written, &mut default] {
            if let Some(p) = v
                .get_mut("store")
                .and_then(|s| s.get_mut("plugins"))
                .and_then(|p| p.as_table_mut())
            {
                p.remove("pool_size");
            }
        }
        assert_eq!(as_written, default);
    }

    #[test]
    fn quotas_are_read_per_namespace() {
        let c = parse(
            "[store.quota]\nevents_per_sec = 30\n[store.namespaces.shop-a]\nmax_records = 5\n",
        )
        .expect("valid");
        assert_eq!(c.store.quota.events_per_sec, Some(30));
        assert_eq!(c.store.namespaces["shop-a"].max_records, Some(5));
        assert_eq!(c.store.namespaces["shop-a"].events_per_sec, None);
        let e = parse("[store.namespaces.shop-a]\nmax_record = 5\n").unwrap_err();
        assert!(e.contains("max_record"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_that_name_them() {
        let e = parse("[store]\ncooccurence_lines = 5\n").unwrap_err();
        assert!(e.contains("cooccurence_lines"), "{e}");
        let e = parse("[serve]\nmax_connections = \"many\"\n").unwrap_err();
        assert!(e.contains("max_connections"), "{e}");
        let e = parse("[storee]\n").unwrap_err();
        assert!(e.contains("storee"), "{e}");
        let c = parse("[store]\ncooccurrence_lines = 5\n[store.plugins]\ndeadline_ms = 25\n")
            .expect("valid");
        assert_eq!(c.store.cooccurrence_lines, 5);
        assert_eq!(c.store.plugins.deadline, Duration::from_millis(25));
        assert_eq!(c.store.session_gap_secs, Config::default().session_gap_secs);
    }
}
