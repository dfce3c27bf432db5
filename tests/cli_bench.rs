//! `recostore bench` on a small store reports sane figures, and `export jsonl` from the CLI.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::process::Command;

fn recostore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(args)
        .output()
        .expect("run recostore")
}

#[test]
fn bench_reports_sane_figures_on_a_small_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("s");
    let d = d.to_str().expect("utf-8");
    let demo = recostore(&["demo", "--dir", d, "--items", "400", "--users", "60"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for scenario in [
        "for-user",
        "similar",
        "together",
        "trending",
        "users-like",
        "cart",
    ] {
        let out = recostore(&[
            "bench",
            "--dir",
            d,
            "--scenario",
            scenario,
            "--queries",
            "300",
            "--threads",
            "2",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(r["queries"], 300, "{r}");
        assert_eq!(r["threads"], 2);
        assert_eq!(r["errors"], 0, "{r}");
        assert!(f("p50_us") > 0.0);
        assert!(
            f("p50_us") <= f("p90_us") && f("p90_us") <= f("p99_us") && f("p99_us") <= f("max_us"),
            "{r}"
        );
        assert!(f("qps") > 0.0);
        assert!(f("max_us") < 5e6, "no query takes 5 s on 400 items: {r}");
    }
    // The same seed draws the same subjects.
    let a = recostore(&[
        "bench",
        "--dir",
        d,
        "--scenario",
        "similar",
        "--queries",
        "50",
        "--json",
    ]);
    let text = recostore(&[
        "bench",
        "--dir",
        d,
        "--scenario",
        "similar",
        "--queries",
        "50",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("queries/s"));
    assert!(a.status.success());
    let bad = recostore(&["bench", "--dir", d, "--scenario", "nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bench runs"));

    let out = tmp.path().join("export");
    let e = recostore(&[
        "export",
        "jsonl",
        "--dir",
        d,
        "--out",
        out.to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let s: serde_json::Value = serde_json::from_slice(&e.stdout).expect("json");
    assert_eq!(s["items"], 400);
    assert!(out.join("events.jsonl").exists());
}

/// `bench --writes N` runs the queries again under a write load, reports both, and leaves
/// every item as it found it.
#[test]
fn bench_under_writes_reports_both_passes_and_restores_the_items() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("s");
    let d = d.to_str().expect("utf-8");
    let demo = recostore(&["demo", "--dir", d, "--items", "300", "--users", "40"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let export = |name: &str| {
        let out = tmp.path().join(name);
        let e = recostore(&[
            "export",
            "jsonl",
            "--dir",
            d,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        let mut lines: Vec<String> = std::fs::read_to_string(out.join("items.jsonl"))
            .expect("items.jsonl")
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let before = export("before");
    let out = recostore(&[
        "bench",
        "--dir",
        d,
        "--scenario",
        "similar",
        "--queries",
        "3000",
        "--threads",
        "1",
        "--writes",
        "2000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let w = &r["under_writes"];
    assert_eq!(w["write_errors"], 0, "{r}");
    let written =
        w["attribute_writes"].as_u64().expect("count") + w["tag_writes"].as_u64().expect("count");
    assert!(written > 0, "the writer wrote while the queries ran: {r}");
    assert!(w["p99_us"].as_f64().expect("p99") > 0.0, "{r}");
    assert_eq!(r["queries"], 3000);
    assert_eq!(
        export("after"),
        before,
        "every changed item is written back"
    );
}

/// Running the demo twice on one store changes nothing the second time: the same items, users
/// and events, and the second run says it recorded none.
#[test]
fn demo_twice_on_one_store_records_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("s");
    let d = d.to_str().expect("utf-8");
    let stats = || {
        let out = recostore(&["stats", "--dir", d, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (v["items"].clone(), v["users"].clone(), v["events"].clone())
    };
    let args = ["demo", "--dir", d, "--items", "300", "--users", "40"];
    let first = recostore(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let once = stats();
    assert!(once.2.as_u64().is_some_and(|n| n > 0), "{once:?}");
    let second = recostore(&args);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(stats(), once, "a second demo run doubled records or events");
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("  0 purchase events recorded") && text.contains("already in this store"),
        "{text}"
    );
}
