//! `recostore query <scenario>`, `query segment`, `eval` and `get` from the command line:
//! JSON shapes, reasons, exit codes.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;
use std::process::{Command, Output};

use recostore::{Event, Item, Store};

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run recostore")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// Twelve users each buy a tent with pegs, and browse a few more items over time.
fn shop(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let items: Vec<Item> = ["tent", "pegs", "mallet", "lamp", "mug", "stove"]
        .iter()
        .map(|id| {
            Item::new(
                *id,
                [("category:outdoor", 1.0), (&*format!("name:{id}"), 1.0)],
            )
            .price(10.0)
        })
        .collect();
    store.upsert_items(&items).unwrap();
    let mut evs = Vec::new();
    for u in 0..12u64 {
        let user = format!("u{u}");
        let t = 1_000_000 + u * 10_000;
        evs.push(Event::purchase(&user, "tent", 1, 100.0, t).session(format!("o{u}")));
        evs.push(Event::purchase(&user, "pegs", 1, 5.0, t).session(format!("o{u}")));
        evs.push(Event::view(&user, "lamp", t + 5_000));
        evs.push(Event::view(&user, "stove", t + 5_100));
    }
    store.record_events(&evs).unwrap();
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

/// Issue 22, item 11: every scenario's `--json` and the socket's answer to the same ask have
/// one shape, and the same results. The CLI runs first (the socket's server holds the store's
/// lock), then the same asks go over a real socket to a server on the same store.
#[test]
fn the_cli_and_the_socket_answer_in_one_shape() {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    let asks: Vec<(Vec<&str>, &str, serde_json::Value)> = vec![
        (
            vec!["together", "tent"],
            "query",
            serde_json::json!({"scenario": "together", "item": "tent"}),
        ),
        (
            vec!["complements", "tent"],
            "query",
            serde_json::json!({"scenario": "complements", "item": "tent"}),
        ),
        (
            vec!["substitutes", "lamp"],
            "query",
            serde_json::json!({"scenario": "substitutes", "item": "lamp"}),
        ),
        (
            vec!["viewed", "lamp"],
            "query",
            serde_json::json!({"scenario": "viewed", "item": "lamp"}),
        ),
        (
            vec!["cart", "tent"],
            "query",
            serde_json::json!({"scenario": "cart", "items": ["tent"]}),
        ),
        (
            vec!["for-user", "u3"],
            "query",
            serde_json::json!({"scenario": "for-user", "user": "u3"}),
        ),
        (
            vec!["after-purchase", "u3"],
            "query",
            serde_json::json!({"scenario": "after-purchase", "user": "u3"}),
        ),
        (
            vec!["trending"],
            "query",
            serde_json::json!({"scenario": "trending"}),
        ),
        (
            vec!["users-like", "u1"],
            "users.like",
            serde_json::json!({"user": "u1"}),
        ),
    ];
    let mut from_cli = Vec::new();
    for (args, _, _) in &asks {
        let mut a = vec!["query"];
        a.extend(args);
        a.extend(["-k", "4", "--json"]);
        from_cli.push(json(&cli(tmp.path(), &a)));
    }
    // `similar` and `profile` add how the tag search ran, and nothing else.
    let sim = json(&cli(tmp.path(), &["query", "similar", "tent", "--json"]));
    assert_eq!(
        keys(&sim),
        [
            "micros",
            "next_cursor",
            "ranked_by",
            "results",
            "scenario",
            "stats"
        ]
    );
    assert_eq!(sim["scenario"], "similar");

    let store = Store::open(tmp.path()).unwrap();
    let sock = tmp.path().join("admin.sock");
    let server = recostore::admin::AdminServer::start(&store, &sock).expect("serve");
    let mut c = recostore::admin::AdminClient::connect(&sock, std::time::Duration::from_secs(30))
        .expect("connect");
    for ((args, cmd, mut ask), cli_answer) in asks.into_iter().zip(from_cli) {
        ask["k"] = 4.into();
        let r = c.call(cmd, ask).expect("response");
        assert!(r.ok, "{args:?}: {:?}", r.error);
        let socket_answer = r.result.expect("result");
        assert_eq!(
            keys(&cli_answer),
            ["micros", "next_cursor", "ranked_by", "results", "scenario"],
            "{args:?}"
        );
        assert_eq!(keys(&cli_answer), keys(&socket_answer), "{args:?}");
        for key in ["scenario", "results", "ranked_by"] {
            assert_eq!(cli_answer[key], socket_answer[key], "{args:?}: {key}");
        }
        // u3 bought everything that was ever bought with what they bought: nothing is left
        // for the receipt page, and both sides must say so alike.
        let empty = args[0] == "after-purchase";
        assert_eq!(
            cli_answer["results"].as_array().unwrap().is_empty(),
            empty,
            "{args:?}"
        );
    }
    server.shutdown().expect("shutdown");
}

#[test]
fn scenario_commands_print_results_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    let v = json(&cli(tmp.path(), &["query", "together", "tent", "--json"]));
    assert_eq!(v["scenario"], "together");
    assert_eq!(v["results"][0]["id"], "pegs");
    assert_eq!(v["results"][0]["reasons"][0]["kind"], "bought-together");
    assert_eq!(v["results"][0]["reasons"][0]["support"], 12);

    let v = json(&cli(tmp.path(), &["query", "cart", "tent", "--json"]));
    assert_eq!(v["results"][0]["id"], "pegs");
    let v = json(&cli(
        tmp.path(),
        &["query", "for-user", "u3", "--exclude-purchased", "--json"],
    ));
    let got: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(!got.contains(&"tent") && !got.contains(&"pegs"), "{got:?}");
    let v = json(&cli(
        tmp.path(),
        &["query", "trending", "-k", "1", "--json"],
    ));
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    // users-like answers in the shape of every scenario.
    let v = json(&cli(tmp.path(), &["query", "users-like", "u1", "--json"]));
    assert_eq!(v["scenario"], "users-like", "{v}");
    assert!(!v["results"].as_array().unwrap().is_empty());
    assert!(v["micros"].is_u64());
    let v = json(&cli(tmp.path(), &["query", "segment", "buyers", "--json"]));
    assert_eq!(v["users"].as_array().unwrap().len(), 12);
    let v = json(&cli(tmp.path(), &["get", "user", "u1", "--json"]));
    assert_eq!(v["activity"]["orders"], 1);
    // Without --json, `get` prints text: one `path  value` line per field.
    let out = cli(tmp.path(), &["get", "user", "u1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("activity.orders") && l.ends_with(" 1")),
        "{text}"
    );
    assert!(v["activity"]["derived_tags"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    // Text output names the reason.
    let out = cli(tmp.path(), &["query", "together", "tent"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bought with tent (12×, lift 1.0)"), "{text}");

    // Typed relations: pegs complete the tent (12 baskets); the lamp and the stove, browsed
    // in the same sessions and never bought, are substitutes for each other.
    let v = json(&cli(
        tmp.path(),
        &["query", "complements", "tent", "--json"],
    ));
    assert_eq!(v["scenario"], "complements");
    assert_eq!(v["results"][0]["id"], "pegs");
    assert_eq!(v["results"][0]["reasons"][0]["kind"], "complement");
    assert_eq!(v["results"][0]["reasons"][0]["bought_together"], 12);
    let v = json(&cli(
        tmp.path(),
        &["query", "substitutes", "lamp", "--json"],
    ));
    assert_eq!(v["results"][0]["id"], "stove", "{v}");
    assert_eq!(v["results"][0]["reasons"][0]["viewed_together"], 12);
    let out = cli(tmp.path(), &["query", "substitutes", "lamp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("substitute for lamp: tag match 0.50, viewed in the same session 12×, bought together 0×"),
        "{text}"
    );
}

#[test]
fn scenario_errors_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    let out = cli(tmp.path(), &["query", "together", "ghost"]);
    assert_eq!(out.status.code(), Some(3), "unknown item");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ghost"));
    // A visitor the store has not seen is a cold start, not an error.
    let out = cli(tmp.path(), &["query", "for-user", "nobody"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tent") && text.contains("; no history yet"),
        "{text}"
    );
    let v = json(&cli(
        tmp.path(),
        &["query", "cart", "--user", "nobody", "--json"],
    ));
    assert_eq!(v["results"][0]["id"], "tent", "{v}");
    assert_eq!(v["results"][0]["reasons"][0]["no_history"], true, "{v}");
    // Read-only commands refuse a directory without a store and create nothing there.
    let typo = tmp.path().join("typo-dir");
    for args in [
        &["stats"][..],
        &["query", "trending"],
        &["get", "item", "tent"],
        &["verify"],
    ] {
        let out = cli(&typo, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no store at") && err.contains("typo-dir"),
            "{args:?}: {err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let out = cli(tmp.path(), &["query", "segment", "vips"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("champions"),
        "lists the known segments"
    );
    let out = cli(tmp.path(), &["query", "trending", "--diversity", "3"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn eval_reports_metrics_and_writes_the_split() {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    let split = tmp.path().join("split");
    let out = cli(
        tmp.path(),
        &[
            "eval",
            "--scenario",
            "for-user",
            "-k",
            "3",
            "--write-split",
            split.to_str().unwrap(),
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(v["users"], 12, "every user holds out their later views");
    let recall = v["recall"].as_f64().unwrap();
    assert!(recall > 0.0 && recall <= 1.0, "{v}");
    let train = std::fs::read_to_string(split.join("train.csv")).unwrap();
    assert!(train.starts_with("user,item,weight,ts\n") && train.contains("u1,tent,1,"));
    let test = std::fs::read_to_string(split.join("test.csv")).unwrap();
    assert!(test.lines().count() > 12, "{test}");
    let out = cli(tmp.path(), &["eval", "--scenario", "trending"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Logs into a file or pipe carry no colour codes, and `--log-format json` writes one JSON
/// object per log line.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_recostore"))
            .args(["stats", "--dir"])
            .arg(tmp.path())
            .args(extra)
            .env("RUST_LOG", "info")
            .output()
            .expect("run recostore");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let text = run(&[]);
    assert!(
        text.contains("INFO"),
        "the store logs its open at info: {text}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");
    let json = run(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO"), "{json}");
}
