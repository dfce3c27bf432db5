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

/// `--ns`: every command runs in the namespace it names. An import creates it, reads find
/// only its records, a read of an unknown namespace fails with the names there are and
/// creates nothing, and whole-store commands refuse it.
#[test]
fn ns_runs_each_command_in_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path());
    let items = dir.path().join("items.jsonl");
    std::fs::write(
        &items,
        "{\"id\": \"mug-red\", \"tags\": {\"type:mug\": 1.0, \"colour:teal\": 0.6}}\n\
         {\"id\": \"mug-teal\", \"tags\": {\"type:mug\": 1.0, \"colour:teal\": 0.9}}\n",
    )
    .unwrap();
    let import = cli(
        dir.path(),
        &[
            "import",
            "jsonl",
            "--items",
            items.to_str().unwrap(),
            "--ns",
            "shop-b",
        ],
    );
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // The same id, another record; the default namespace is as it was.
    let b = cli(
        dir.path(),
        &["--ns", "shop-b", "get", "item", "mug-red", "--json"],
    );
    let text = String::from_utf8_lossy(&b.stdout);
    assert!(
        b.status.success() && text.contains("colour:teal") && !text.contains("colour:red"),
        "{text}"
    );
    let a = cli(dir.path(), &["get", "item", "mug-red", "--json"]);
    assert!(String::from_utf8_lossy(&a.stdout).contains("colour:red"));
    assert_eq!(
        ids(&cli(
            dir.path(),
            &["query", "similar", "mug-red", "--json", "--ns", "shop-b"]
        )),
        vec!["mug-teal"]
    );
    let stats = cli(dir.path(), &["stats", "--json", "--ns", "shop-b"]);
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("json");
    assert_eq!(v["items"], 2);
    // An unknown namespace: exit 1, the names, nothing created.
    let typo = cli(dir.path(), &["stats", "--ns", "shop-c"]);
    let err = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(1), "{err}");
    assert!(err.contains("`shop-b`"), "{err}");
    let bad = cli(dir.path(), &["stats", "--ns", "../x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        Store::open(dir.path()).unwrap().namespaces().unwrap(),
        vec!["shop-b"]
    );
    let compact = cli(dir.path(), &["compact", "--ns", "shop-b"]);
    assert!(!compact.status.success());
    assert!(String::from_utf8_lossy(&compact.stderr).contains("without --ns"));
}
