//! The operator's path: `recostore publish` once, `recostore serve --publish` on a timer, and a
//! `recostore serve --follow` replica that answers as the leader, says so in `stats`, refuses
//! writes with the `read_only` code and follows the next generation.
#![cfg(all(feature = "cli", feature = "admin", feature = "replication"))]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn recostore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
}

fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no socket at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin(sock: &Path, args: &[&str]) -> serde_json::Value {
    let out = recostore()
        .arg("admin")
        .arg("--socket")
        .arg(sock)
        .arg("--json")
        .args(args)
        .output()
        .expect("run admin");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A server process, stopped with SIGTERM when dropped, also when the test fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str], sock: &Path) -> Server {
    let child = recostore()
        .arg("serve")
        .args(args)
        .arg("--socket")
        .arg(sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let server = Server(child);
    wait_for(sock);
    server
}

#[test]
fn a_replica_served_over_the_socket_follows_its_leader() {
    let tmp = tempfile::tempdir().expect("tmp");
    let leader = tmp.path().join("leader");
    let l = leader.to_str().expect("utf-8");
    let published = tmp.path().join("published");
    let url = format!("file://{}", published.display());
    let demo = recostore()
        .args(["demo", "--dir", l, "--items", "300", "--users", "30"])
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let out = recostore()
        .args(["publish", "--dir", l, "--json", &url])
        .output()
        .expect("publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["generation"], 1);

    // The leader serves and publishes every 0.2 s; the replica polls every 0.1 s.
    let leader_sock = tmp.path().join("leader.sock");
    let leader_srv = serve(
        &["--dir", l, "--publish", &url, "--publish-every", "0.2"],
        &leader_sock,
    );
    let replica_dir = tmp.path().join("replica");
    let replica_sock = tmp.path().join("replica.sock");
    let replica_srv = serve(
        &[
            "--dir",
            replica_dir.to_str().expect("utf-8"),
            "--follow",
            &url,
            "--poll-every",
            "0.1",
        ],
        &replica_sock,
    );

    let ask = ["query", "scenario=trending", "k=5"];
    assert_eq!(
        admin(&replica_sock, &ask)["result"]["results"],
        admin(&leader_sock, &ask)["result"]["results"]
    );
    let stats = admin(&replica_sock, &["stats"]);
    assert!(
        stats["result"]["replica"]["generation"]
            .as_u64()
            .expect("generation")
            >= 1
    );
    assert_eq!(stats["result"]["replica"]["stale"], false);
    assert_eq!(
        admin(&leader_sock, &["stats"])["result"]["replica"],
        serde_json::Value::Null
    );
    let text = admin(&replica_sock, &["stats", "format=prometheus"]);
    let text = text["result"]["text"].as_str().expect("metrics text");
    for metric in [
        "recostore_replica_generation ",
        "recostore_replica_behind ",
        "recostore_replica_last_poll_ok_seconds ",
        "recostore_replica_stale 0",
        "recostore_queries_total{scenario=\"trending\"}",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }

    // A write on the replica is refused by code; the same write on the leader reaches the
    // replica with a later generation.
    let write = [
        "item.upsert",
        r#"{"items":[{"id":"fresh-item","tags":{"colour:teal":1.0}}]}"#,
    ];
    let refused = admin(&replica_sock, &write);
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "read_only", "{refused}");
    let done = admin(&leader_sock, &write);
    assert_eq!(done["ok"], true, "{done}");
    let get = ["item.get", "id=fresh-item"];
    let started = Instant::now();
    loop {
        let got = admin(&replica_sock, &get);
        if got["ok"] == true {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replica never served the leader's write: {got}\n{}",
            admin(&replica_sock, &["stats"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((replica_srv, leader_srv));
}

#[test]
fn an_offline_build_is_followed_and_the_next_build_replaces_it() {
    let builds_before = build_dirs();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let published = tmp.path().join("published");
    let url = format!("file://{}", published.display());
    let build = |items: &Path| {
        let out = recostore()
            .args(["build", "--json", "--out", &url, "--items"])
            .arg(items)
            .arg("--users")
            .arg(data.join("shop-users.jsonl"))
            .arg("--events")
            .arg(data.join("shop-events.jsonl"))
            .output()
            .expect("build");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The import summary, then the publish report: two JSON objects one after the other.
        serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<serde_json::Value>()
            .map(|v| v.expect("json"))
            .last()
            .expect("a report")
    };
    let items = data.join("shop-items.jsonl");
    let lines = std::fs::read_to_string(&items)
        .expect("items")
        .lines()
        .count();
    assert_eq!(build(&items)["generation"], 1);

    let mut source = recostore::ReplicaSource::from_url(&url).expect("source");
    source.poll_every = None;
    let replica =
        recostore::Store::open_replica(tmp.path().join("replica"), source).expect("replica");
    assert_eq!(replica.store().stats().items, lines);

    // Tomorrow's build: one more item. A fresh store takes the prefix over.
    let more = tmp.path().join("items-2.jsonl");
    let mut text = std::fs::read_to_string(&items).expect("items");
    text.push_str("{\"id\": \"new-lamp\", \"tags\": {\"kind:lamp\": 1.0}}\n");
    std::fs::write(&more, text).expect("write");
    assert_eq!(build(&more)["generation"], 2);
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(replica.store().stats().items, lines + 1);
    assert!(replica.store().get_item("new-lamp").is_some());

    // A live store publishing there without --take-over is refused, and says what to do.
    let live = tmp.path().join("live");
    let demo = recostore()
        .args(["demo", "--items", "50", "--users", "5", "--dir"])
        .arg(&live)
        .output()
        .expect("demo");
    assert!(demo.status.success());
    let out = recostore()
        .args(["publish", "--dir"])
        .arg(&live)
        .arg(&url)
        .output()
        .expect("publish");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--take-over"), "{err}");
    // No temporary build directories are left behind.
    assert_eq!(build_dirs(), builds_before);
}

/// The build directories under the system's temporary directory.
fn build_dirs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("recostore-build-"))
        .collect();
    v.sort();
    v
}
