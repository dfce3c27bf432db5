//! `recostore query` from the command line: filters, JSON output, exit codes and error messages.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;
use std::process::{Command, Output};

use recostore::{Item, Store};

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run recostore")
}

fn shop(dir: &Path) {
    let store = Store::open(dir).unwrap();
    store
        .upsert_items(&[
            Item::new("mug-red", [("type:mug", 1.0), ("colour:red", 0.6)])
                .category("kitchen/mugs")
                .price(12.0)
                .stock(3),
            Item::new("mug-blue", [("type:mug", 1.0), ("colour:blue", 0.6)])
                .category("kitchen/mugs")
                .price(14.0),
            Item::new("mug-big", [("type:mug", 1.0), ("size:xl", 0.5)])
                .category("kitchen/mugs")
                .price(30.0)
                .stock(8),
            Item::new("cap-red", [("type:cap", 1.0), ("colour:red", 0.6)])
                .category("apparel/caps")
                .price(9.0)
                .stock(1),
        ])
        .unwrap();
    store.rebuild().unwrap();
}

fn ids(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    v["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn similar_with_filters_and_json() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path());
    let all = ids(&cli(dir.path(), &["query", "similar", "mug-red", "--json"]));
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        !all.contains(&"mug-red".to_string()),
        "the item itself is excluded"
    );

    let in_stock = ids(&cli(
        dir.path(),
        &[
            "query",
            "similar",
            "mug-red",
            "--in-stock",
            "--category",
            "kitchen",
            "--json",
        ],
    ));
    assert_eq!(in_stock, vec!["mug-big"]);

    let out = cli(dir.path(), &["query", "similar", "mug-red", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["stats"]["path"].is_string());
    assert!(
        v["results"][0]["matched"][0][0].is_string(),
        "explanations present"
    );
}

#[test]
fn profile_with_must_tags_and_similarities() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path());
    let red = ids(&cli(
        dir.path(),
        &[
            "query",
            "profile",
            "--tag",
            "colour:red",
            "--must",
            "type:cap",
            "--json",
        ],
    ));
    assert_eq!(red, vec!["cap-red"]);
    for sim in ["cosine", "dot", "jaccard"] {
        let got = ids(&cli(
            dir.path(),
            &[
                "query",
                "profile",
                "--tag",
                "type:mug=2",
                "--similarity",
                sim,
                "--idf",
                "-k",
                "2",
                "--json",
            ],
        ));
        assert_eq!(got.len(), 2, "{sim}: {got:?}");
    }
}

#[test]
fn errors_say_what_to_do_and_use_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path());
    let missing = cli(dir.path(), &["query", "similar", "no-such-item"]);
    assert_eq!(missing.status.code(), Some(3));

    let bad = cli(
        dir.path(),
        &[
            "query",
            "similar",
            "mug-red",
            "--min-price",
            "50",
            "--max-price",
            "10",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("min_price") && msg.contains("Fix the query"),
        "{msg}"
    );

    let usage = cli(dir.path(), &["query", "profile", "--tag", "x=abc"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("name=weight"));
}
