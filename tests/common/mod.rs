//! The child-process harness the crash tests share: re-run this test binary as a child that
//! writes and prints `ack N` for each acknowledged unit of work, SIGKILL it after a while, and
//! return what it acknowledged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run the ignored test `child_test` of this binary as a child with `envs`, kill it with
/// SIGKILL after `after`, and return the numbers it printed as `ack N`.
#[allow(dead_code)] // not every crash test binary uses both helpers
pub fn run_child_and_kill(child_test: &str, envs: &[(&str, String)], after: Duration) -> Vec<u64> {
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
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse().ok()))
            .collect::<Vec<u64>>()
    });
    std::thread::sleep(after);
    child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix.
    child.wait().expect("reap child");
    reader.join().expect("reader thread")
}

/// Run the ignored test `child_test` of this binary as a child with `envs` until it prints a
/// line ending with `line` (or `limit` passes), then kill it with SIGKILL. Returns whether the
/// line came.
#[allow(dead_code)] // not every crash test binary uses both helpers
pub fn run_child_until(
    child_test: &str,
    envs: &[(&str, String)],
    line: &str,
    limit: Duration,
) -> bool {
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
    let (tx, rx) = std::sync::mpsc::channel();
    let want = line.to_string();
    std::thread::spawn(move || {
        let seen = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.ends_with(&want)); // libtest may print "test NAME ... " first
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(limit).unwrap_or(false);
    child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix.
    child.wait().expect("reap child");
    seen
}
