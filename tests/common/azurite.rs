//! A real Azure Blob Storage emulator for the replication tests: Azurite's blob service (npm
//! `azurite`), one per test, on a free port, stopped when dropped.
//!
//! `azurite-blob` is looked for in `RECOSTORE_AZURITE`, then `.ci/node_modules/.bin/`, then
//! `target/azurite/node_modules/.bin/`; when none is there it is installed into
//! `target/azurite` (once, about half a minute, needs npm). `.ci/run` installs it up front.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use recostore::replica::object_store::azure::MicrosoftAzureBuilder;
use recostore::replica::object_store::{ClientOptions, ObjectStore, RetryConfig};
use sha2::Digest;

/// Azurite's fixed account and its published key (not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

static INSTALL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn azurite_blob() -> PathBuf {
    if let Ok(p) = std::env::var("RECOSTORE_AZURITE") {
        return PathBuf::from(p);
    }
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    for dir in [".ci", "target/azurite"] {
        let exe = root().join(dir).join("node_modules/.bin/azurite-blob");
        if exe.exists() {
            return exe;
        }
    }
    let dir = root().join("target/azurite");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ok = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "azurite@3",
        ])
        .current_dir(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "azurite is needed for the Azure tests and could not be installed into {}: run \
         `npm install --prefix .ci azurite@3`, or set RECOSTORE_AZURITE to an azurite-blob \
         executable",
        dir.display()
    );
    dir.join("node_modules/.bin/azurite-blob")
}

/// A running Azurite blob service.
pub struct Azurite {
    child: Child,
    _data: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    /// Start one and wait until it answers.
    pub fn start() -> Azurite {
        let exe = azurite_blob();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let data = tempfile::tempdir().expect("tmp");
        let child = Command::new(&exe)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let azurite = Azurite {
            child,
            _data: data,
            port,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        azurite
    }

    /// The account's endpoint, path-style as the emulator serves it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Create `container`: one `Put Container` signed with the account key (SharedKey).
    pub fn create_container(&self, container: &str) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .expect("key");
        let signature =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
             Authorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "create container: {answer}"
        );
    }
}

/// HMAC-SHA256 (RFC 2104), which SharedKey signing is.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// An Azure client for `container` at the emulator, with short retries.
pub fn azure(azurite: &Azurite, container: &str) -> Arc<dyn ObjectStore> {
    let store = MicrosoftAzureBuilder::new()
        .with_account(ACCOUNT)
        .with_access_key(KEY)
        .with_endpoint(azurite.endpoint())
        .with_container_name(container)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(Duration::from_secs(10)),
        )
        .with_retry(RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(2),
            ..RetryConfig::default()
        })
        .build()
        .expect("azure client");
    Arc::new(store)
}
