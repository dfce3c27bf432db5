//! `recostore serve` and `recostore admin` as processes: SIGTERM shuts down gracefully (the
//! socket file goes, the store reopens clean), and the client's exit codes mean something.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recostore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
}

fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no socket at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin(sock: &Path, args: &[&str]) -> std::process::Output {
    recostore()
        .arg("admin")
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("run admin")
}

#[test]
fn serve_answers_the_cli_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let d = store_dir.to_str().expect("utf-8");
    let demo = recostore()
        .args(["demo", "--dir", d, "--items", "200", "--users", "20"])
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let sock = dir.path().join("admin.sock");
    let mut server = recostore()
        .args(["serve", "--dir", d, "--socket"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(&sock);

    let out = admin(&sock, &["ping"]);
    assert!(out.status.success());
    let out = admin(&sock, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(stats["result"]["items"], 200);
    let out = admin(&sock, &["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("segment.generation"));
    let out = admin(&sock, &["query", "scenario=trending", "k=3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ranked by builtin"));
    assert_eq!(
        admin(&sock, &["item.get", "id=no-such-item"]).status.code(),
        Some(3)
    );
    assert_eq!(admin(&sock, &["nonsense"]).status.code(), Some(2));
    let out = admin(&sock, &["log.level", "filter=info"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
    assert!(!sock.exists(), "the socket file is removed");
    assert_eq!(
        admin(&sock, &["ping"]).status.code(),
        Some(4),
        "nothing to connect to"
    );

    let store = recostore::Store::open(&store_dir).expect("reopens clean");
    assert_eq!(store.stats().items, 200);
    store.verify().expect("segment intact");
}
