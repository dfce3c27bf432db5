//! The exposure and paging flags of `recostore query`, on a store opened by the command and
//! through `--socket` to a running `recostore serve` (where cursors live).
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recostore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
}

fn run(args: &[&str]) -> String {
    let out = recostore().args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn result_ids(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn demo(dir: &Path) -> String {
    let d = dir.join("store");
    let d = d.to_str().expect("utf-8").to_string();
    run(&["demo", "--dir", &d, "--items", "200", "--users", "20"]);
    d
}

/// Two separate runs of `query --slot home --user U --not-shown-within 1d`: the second
/// leaves out what the first showed, because the first recorded its impression at close.
#[test]
fn one_shot_queries_record_what_they_showed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo(dir.path());
    let ask = [
        "query",
        "trending",
        "-k",
        "5",
        "--user",
        "cli-visitor",
        "--slot",
        "home",
        "--not-shown-within",
        "1d",
        "--dir",
        &d,
        "--json",
    ];
    let first = run(&ask);
    let v: serde_json::Value = serde_json::from_str(&first).expect("json");
    assert_eq!(v["impression"], "queued");
    assert!(v.get("next_cursor").is_some_and(|c| c.is_null()));
    let second = run(&ask);
    let (a, b) = (result_ids(&first), result_ids(&second));
    assert_eq!(a.len(), 5);
    assert!(a.iter().all(|i| !b.contains(i)), "{a:?} then {b:?}");
    // Demoted instead: the first five come back lower, and say why.
    let demoted = run(&[
        "query",
        "trending",
        "-k",
        "20",
        "--user",
        "cli-visitor",
        "--demote-shown",
        "--dir",
        &d,
    ]);
    assert!(demoted.contains("shown 1 time before"), "{demoted}");
    // A cap of 1 a day leaves out all ten.
    let capped = run(&[
        "query",
        "trending",
        "-k",
        "20",
        "--user",
        "cli-visitor",
        "--cap",
        "1/1d",
        "--dir",
        &d,
        "--json",
    ]);
    let c = result_ids(&capped);
    assert!(a.iter().chain(&b).all(|i| !c.contains(i)));
    // Cursors need the server that holds them.
    let out = recostore()
        .args([
            "query",
            "trending",
            "--cursor",
            "0000000000000000.5",
            "--dir",
            &d,
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--socket"));
    let out = recostore()
        .args(["query", "trending", "--cap", "3", "--dir", &d])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3/1d"));
}

/// Paging through `recostore serve`: the pages the text output's cursors lead to lay end to
/// end into the answer asked at once, with no repeat.
#[test]
fn paging_through_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo(dir.path());
    let sock = dir.path().join("admin.sock");
    // Killed however the test ends: a failed assertion must not leave a server running.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        recostore()
            .args(["serve", "--dir", &d, "--socket"])
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let started = Instant::now();
    while !sock.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = sock.to_str().expect("utf-8");
    let long = result_ids(&run(&[
        "query", "trending", "-k", "30", "--socket", s, "--json",
    ]));
    assert_eq!(long.len(), 30);
    let mut pages: Vec<String> = Vec::new();
    let mut out = run(&["query", "trending", "-k", "7", "--paged", "--socket", s]);
    loop {
        for line in out.lines() {
            let line = line.trim_start();
            if let Some((n, rest)) = line.split_once(". ") {
                if n.parse::<usize>().is_ok() {
                    pages.push(rest.split_whitespace().next().expect("id").to_string());
                }
            }
        }
        let Some(cursor) = out
            .lines()
            .find_map(|l| l.strip_prefix("next page: --cursor "))
            .map(str::to_string)
        else {
            break;
        };
        out = run(&[
            "query", "trending", "-k", "7", "--cursor", &cursor, "--socket", s,
        ]);
    }
    // The demo store's depth is the default 100: compare its first 30.
    assert_eq!(pages[..30].to_vec(), long);
    let mut distinct = pages.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), pages.len());
    // A wrong cursor is a clear error with exit code 1.
    let bad = recostore()
        .args(["query", "trending", "--cursor", "nope", "--socket", s])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a cursor"));
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(server.0.wait().expect("wait").success());
}
