//! A real S3-compatible server for the replication tests: `moto_server` (PyPI `moto[server]`),
//! one per test, on a free port, stopped when dropped; and a TCP proxy in front of it whose
//! link can be cut and restored, for "the object store is unreachable".
//!
//! `moto_server` is looked for in `RECOSTORE_MOTO_SERVER`, then `.ci/venv/bin/`, then
//! `target/moto-venv/bin/`; when none is there it is installed into `target/moto-venv` (once,
//! about a minute, needs PyPI). `.ci/run` installs it up front.

// Each test binary that includes this uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recostore::replica::object_store::aws::AmazonS3Builder;
use recostore::replica::object_store::{ClientOptions, ObjectStore, RetryConfig};

static INSTALL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `moto_server` executable, installed if missing.
fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("RECOSTORE_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    for venv in [".ci/venv", "target/moto-venv"] {
        let exe = root().join(venv).join("bin").join("moto_server");
        if exe.exists() {
            return exe;
        }
    }
    let venv = root().join("target/moto-venv");
    let ok = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "moto[server]>=5,<6"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "moto_server is needed for the S3 tests and could not be installed into {}: \
         run `python3 -m venv .ci/venv && .ci/venv/bin/pip install 'moto[server]'`, or set \
         RECOSTORE_MOTO_SERVER to a moto_server executable",
        venv.display()
    );
    venv.join("bin/moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Start one and wait until it answers.
    pub fn start() -> Moto {
        let exe = moto_server();
        let port = free_port();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let moto = Moto { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Create `bucket` (moto accepts an unsigned request).
    pub fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
    }
}

/// An S3 client for `bucket` at `port`, with short retries so an outage shows in seconds.
pub fn s3(port: u16, bucket: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        // The options replace the builder's whole set, plain HTTP included.
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
        .expect("S3 client");
    Arc::new(store)
}

/// A TCP proxy on a port of its own in front of `upstream`; `cut` refuses and drops every
/// connection until `restore`.
pub struct Proxy {
    /// The port to connect to.
    pub port: u16,
    down: Arc<AtomicBool>,
}

impl Proxy {
    /// Start one in front of 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let flag = flag.clone();
                pipe(client, server, flag);
            }
        });
        Proxy { port, down }
    }

    /// The object store stops answering.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// It answers again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Copy both ways until either side closes or the link is cut.
fn pipe(a: TcpStream, b: TcpStream, down: Arc<AtomicBool>) {
    for (mut from, mut to) in [
        (a.try_clone().expect("clone"), b.try_clone().expect("clone")),
        (b, a),
    ] {
        let down = down.clone();
        std::thread::spawn(move || {
            let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0u8; 64 * 1024];
            loop {
                if down.load(Ordering::SeqCst) {
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    return;
                }
                match from.read(&mut buf) {
                    Ok(0) => {
                        let _ = to.shutdown(std::net::Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
    }
}
