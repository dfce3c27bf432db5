//! The child-process harness the crash tests share: re-run this test binary as a child that
//! writes and prints `ack N` for each acknowledged unit of work, SIGKILL it after a while, and
//! return what it acknowledged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run the ignored test `child_test` of this binary as a child with `envs`, kill it with
/// SIGKILL after `after`, and return the numbers it printed as `ack N`.
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
