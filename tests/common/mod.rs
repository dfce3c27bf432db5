//! The child-process harness the crash tests share: re-run this test binary as a child that
//! writes and prints what it has made durable, SIGKILL it, and return what it said. Also what
//! tests of the store's directory share.

pub mod retail;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Start the ignored test `child_test` of this binary as a child with `envs`, its stdout piped.
fn spawn_child(child_test: &str, envs: &[(&str, String)]) -> (Child, ChildStdout) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        child_test,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, stdout)
}

/// What a child printed on one line, without what libtest may print before it on the first
/// line ("test NAME ... ").
fn said(line: &str) -> &str {
    line.rsplit_once(" ... ").map_or(line, |(_, rest)| rest)
}

fn kill(mut child: Child) {
    // A child that already failed by itself (a panic) was never killed mid-work: a crash test
    // whose child fails early tests nothing, so it fails too.
    if let Ok(Some(status)) = child.try_wait() {
        assert!(
            status.success(),
            "the child process failed by itself ({status}) before it was killed; run its ignored test by hand with the same environment to see why"
        );
    }
    child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix.
    child.wait().expect("reap child");
}

/// Run the ignored test `child_test` of this binary as a child with `envs`, kill it with
/// SIGKILL after `after`, and return the numbers it printed as `ack N`.
#[allow(dead_code)] // not every crash test binary uses both helpers
pub fn run_child_and_kill(child_test: &str, envs: &[(&str, String)], after: Duration) -> Vec<u64> {
    let (child, stdout) = spawn_child(child_test, envs);
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| said(&l).strip_prefix("ack ").and_then(|n| n.parse().ok()))
            .collect::<Vec<u64>>()
    });
    std::thread::sleep(after);
    kill(child);
    reader.join().expect("reader thread")
}

/// Run the ignored test `child_test` of this binary as a child with `envs` until it prints
/// `line` (or `limit` passes), then kill it with SIGKILL. Returns whether the line came.
#[allow(dead_code)] // not every crash test binary uses both helpers
pub fn run_child_until(
    child_test: &str,
    envs: &[(&str, String)],
    line: &str,
    limit: Duration,
) -> bool {
    let (child, stdout) = spawn_child(child_test, envs);
    let (tx, rx) = std::sync::mpsc::channel();
    let want = line.to_string();
    std::thread::spawn(move || {
        let seen = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| said(&l) == want);
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(limit).unwrap_or(false);
    kill(child);
    seen
}

/// In a child started by [`run_child_and_kill`]: the store directory and the first number
/// to write, from `RECOSTORE_CRASH_DIR` and `RECOSTORE_CRASH_START` (0 if unset). `None`
/// when the directory is unset: the ignored child test was run by hand, and does nothing.
#[allow(dead_code)] // not every test binary starts children
pub fn child_env() -> Option<(String, u64)> {
    let dir = std::env::var("RECOSTORE_CRASH_DIR").ok()?;
    let start = std::env::var("RECOSTORE_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some((dir, start))
}

/// The directories of sled's files in the store at `dir`: `db`, or `db.N` after N reclaims
/// (FORMAT.md), sorted. A healthy store that is not mid-reclaim has exactly one.
#[allow(dead_code)] // not every test binary looks at the directory
pub fn sled_dirs(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the store directory")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            n == "db"
                || n.strip_prefix("db.")
                    .is_some_and(|g| g.parse::<u64>().is_ok())
        })
        .collect();
    names.sort();
    names
}
