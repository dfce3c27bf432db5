//! `recostore plugin run|check|features` and `query --plugin`, as a strategy author uses them.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

mod plugin_support;

use std::process::Command;

use plugin_support::{examples, Wat};

fn recostore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(args)
        .output()
        .expect("run recostore")
}

fn input() -> String {
    format!("{}/plugins/examples/input.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn run_prints_scores_order_fuel_memory_logs_and_time() {
    let wasm = examples().join("a9_match.wasm");
    let out = recostore(&[
        "plugin",
        "run",
        wasm.to_str().expect("utf-8 path"),
        "--input",
        &input(),
        "--json",
        "--repeat",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["ranked"].as_array().expect("ranked").len(), 5);
    assert_eq!(r["scores"].as_array().expect("scores").len(), 5);
    assert!(r["fuel_used"].as_u64().expect("fuel") > 0);
    assert!(r["memory_bytes"].as_u64().expect("memory") >= 65_536);
    assert!(r["median_us"].as_f64().expect("time") > 0.0);
    assert_eq!(r["repeats"], 5);
    // The best by a9's own formula on the example input: the well-reviewed mug.
    assert_eq!(r["ranked"][0]["name"], "camping-mug");

    let text = recostore(&[
        "plugin",
        "run",
        wasm.to_str().expect("utf-8"),
        "--input",
        &input(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    for part in [
        "features:",
        "rank",
        "fuel used:",
        "memory:",
        "time:",
        "logs:",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

#[test]
fn run_shows_logs_and_names_a_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatty = dir.path().join("chatty.wat");
    // Logs on every call, smoke run included; spins whenever the scenario is not 5.
    let wat = Wat {
        hostile: "(loop $spin (br $spin))",
        ..Wat::default()
    }
    .text()
    .replace(
        "(local $i i32)",
        "(local $i i32) (call $log (i32.const 2) (i32.const 0) (i32.const 19))",
    );
    std::fs::write(&chatty, &wat).expect("write");
    let out = recostore(&[
        "plugin",
        "run",
        chatty.to_str().expect("utf-8"),
        "--input",
        &input(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from a plugin"));

    let spin_input = dir.path().join("spin.json");
    std::fs::write(
        &spin_input,
        r#"{"context": {"scenario": 9}, "candidates": [{"id": 1, "similarity": 1}]}"#,
    )
    .expect("write");
    let out = recostore(&[
        "plugin",
        "run",
        chatty.to_str().expect("utf-8"),
        "--input",
        spin_input.to_str().expect("utf-8"),
        "--deadline-ms",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ran past its deadline"), "{err}");
}

#[test]
fn check_refuses_a_forbidden_import_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wasi.wat");
    let wat = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        ..Wat::default()
    };
    std::fs::write(&path, wat.text()).expect("write");
    let out = recostore(&["plugin", "check", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fd_write") && err.contains("wasm32-unknown-unknown"),
        "{err}"
    );

    let good = examples().join("spend_match.wasm");
    let out = recostore(&["plugin", "check", good.to_str().expect("utf-8")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("similarity, price, category"));
}

#[test]
fn query_ranks_a_store_with_a_plugin_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let demo = recostore(&["demo", "--dir", d, "--items", "300", "--users", "50"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let wasm = examples().join("spend_match.wasm");
    let out = recostore(&[
        "query",
        "trending",
        "--dir",
        d,
        "-k",
        "5",
        "--plugin",
        wasm.to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["results"].as_array().map(Vec::len), Some(5), "{r}");
    // A read-only query leaves nothing behind: the one-off plugin is not in the store.
    let store = recostore::Store::open(dir.path()).expect("reopen");
    assert!(
        store.plugins().list().is_empty(),
        "query --plugin wrote its plugin into the store: {:?}",
        store.plugins().list()
    );
}

/// `/dev/zero` and a FIFO are refused at once, not read until memory runs out or blocked on
/// for ever; a file over the size cap is refused by its size.
#[test]
fn check_refuses_devices_fifos_and_oversized_files_without_reading_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.wasm");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let big = dir.path().join("big.wasm");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(9 << 20).expect("sparse 9 MiB file");
    for (path, says) in [
        ("/dev/zero".into(), "not a regular file"),
        (fifo, "not a regular file"),
        (big, "over the 8388608-byte cap"),
    ] {
        let path: std::path::PathBuf = path;
        let p = path.to_str().expect("utf-8");
        let started = std::time::Instant::now();
        for args in [
            vec!["plugin", "check", p],
            vec!["plugin", "run", p, "--input", "/dev/zero"],
        ] {
            let out = recostore(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{p}: took {:?}",
            started.elapsed()
        );
    }
    // The runner's input is bounded the same way.
    let wasm = examples().join("a9_match.wasm");
    let out = recostore(&[
        "plugin",
        "run",
        wasm.to_str().expect("utf-8"),
        "--input",
        "/dev/zero",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

/// A strategy author's first bugs, as the tools report them: a panic names its message and
/// line, a refused config gives the plugin's own reason, a config that is not JSON is caught
/// before the plugin sees it, and the runner speaks of the runner.
#[test]
fn a_panic_and_a_refused_config_are_reported_in_the_plugins_own_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = examples().join("fault_demo.wasm");
    let faulty = faulty.to_str().expect("utf-8");
    // k = 13 makes fault-demo panic.
    let text = std::fs::read_to_string(input()).expect("input");
    let input13 = dir.path().join("k13.json");
    std::fs::write(&input13, text.replacen("\"k\": 3", "\"k\": 13", 1)).expect("write");
    let out = recostore(&[
        "plugin",
        "run",
        faulty,
        "--input",
        input13.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deliberate panic: asked for 13 results") && err.contains("src/lib.rs:"),
        "{err}"
    );
    assert!(!err.contains("keeps serving"), "a runner message: {err}");

    let a9 = examples().join("a9_match.wasm");
    let a9 = a9.to_str().expect("utf-8");
    for (config, says) in [
        (
            r#"{"conversion_prior": 0}"#,
            "conversion_prior must be above 0",
        ),
        (
            r#"{"match_weight": "0.5"}"#,
            "config `match_weight` must be a number, not \"0.5\"",
        ),
        ("not json", "--config is not JSON"),
    ] {
        let out = recostore(&["plugin", "check", a9, "--config", config]);
        assert!(!out.status.success(), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{config}: {err}");
    }
    let out = recostore(&["plugin", "check", a9, "--config", r#"{"match_weight": 2}"#]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
