//! `recostore serve` and `recostore admin` as processes: SIGTERM shuts down gracefully (the
//! socket file goes, the store reopens clean), and the client's exit codes mean something.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recostore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recostore"))
}

fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no socket at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin(sock: &Path, args: &[&str]) -> std::process::Output {
    recostore()
        .arg("admin")
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("run admin")
}

#[test]
fn serve_answers_the_cli_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let d = store_dir.to_str().expect("utf-8");
    let demo = recostore()
        .args(["demo", "--dir", d, "--items", "200", "--users", "20"])
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let sock = dir.path().join("admin.sock");
    let mut server = recostore()
        .args(["serve", "--dir", d, "--socket"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(&sock);

    let out = admin(&sock, &["ping"]);
    assert!(out.status.success());
    let out = admin(&sock, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(stats["result"]["items"], 200);
    let out = admin(&sock, &["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("segment.generation"));
    let out = admin(&sock, &["query", "scenario=trending", "k=3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ranked by builtin"));
    // A new visitor, with an id that looks like a number (the client sends it as a string).
    let out = admin(
        &sock,
        &["query", "--json", "scenario=for-user", "user=17850", "k=3"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = v["result"]["results"].as_array().expect("results");
    assert_eq!(items.len(), 3, "{v}");
    assert!(
        items
            .iter()
            .all(|r| r["reasons"].as_array().is_some_and(|rs| rs
                .iter()
                .any(|x| x["kind"] == "popular" && x["no_history"] == true))),
        "{v}"
    );
    assert_eq!(
        admin(&sock, &["user.get", "id=17850"]).status.code(),
        Some(3)
    );
    // A typo is refused with the field it meant.
    let out = admin(&sock, &["query", "scenario=trending", "kk=3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`kk`") && err.contains("did you mean `k`?"),
        "{err}"
    );
    let out = admin(
        &sock,
        &["query", "scenario=trending", r#"filter={"max_prise":1}"#],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `max_price`?"), "{err}");
    // The store is held: a CLI command on it says to use the socket.
    let out = recostore()
        .args(["stats", "--dir", d])
        .output()
        .expect("stats");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recostore admin --socket"), "{err}");
    assert_eq!(
        admin(&sock, &["item.get", "id=no-such-item"]).status.code(),
        Some(3)
    );
    assert_eq!(admin(&sock, &["nonsense"]).status.code(), Some(2));
    let out = admin(&sock, &["log.level", "filter=info"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
    assert!(!sock.exists(), "the socket file is removed");
    assert_eq!(
        admin(&sock, &["ping"]).status.code(),
        Some(4),
        "nothing to connect to"
    );

    let store = recostore::Store::open(&store_dir).expect("reopens clean");
    assert_eq!(store.stats().items, 200);
    store.verify().expect("segment intact");
}

/// Start `recostore serve` on `d` with its socket at `sock`; the child.
fn serve(d: &str, sock: &Path) -> std::process::Child {
    let child = recostore()
        .args(["serve", "--dir", d, "--socket"])
        .arg(sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(sock);
    child
}

/// Stop a `serve` child with SIGTERM and wait for it.
fn stop(mut child: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(child.wait().expect("wait").success());
}

fn ok_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["result"].clone()
}

/// A shop run entirely through the socket: records written, an A/B slot routed and served,
/// clicks and purchases recorded, and `slot.stats` attributing them; the figures survive a
/// restart of `serve`.
#[test]
fn an_ab_slot_through_serve_end_to_end_and_its_figures_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let d = store_dir.to_str().expect("utf-8");
    let sock = dir.path().join("admin.sock");
    // `serve` on a new directory creates the store.
    let server = serve(d, &sock);

    // Records over the socket, from JSON lines files and from arguments.
    let items = dir.path().join("items.jsonl");
    let lines: String = (0..20)
        .map(|i| {
            format!(
                "{{\"id\": \"{i}\", \"category\": \"mugs\", \"tags\": {{\"colour:c{}\": 1.0}}, \"price\": 5.0}}\n",
                i % 3
            )
        })
        .collect();
    std::fs::write(&items, lines).expect("write");
    let out = admin(
        &sock,
        &["item.upsert", "--file", items.to_str().expect("utf-8")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("20 items stored"));
    let up = ok_json(&admin(
        &sock,
        &[
            "user.upsert",
            "--json",
            r#"{"users": [{"id": "17850", "tags": {"colour:c1": 1.0}}]}"#,
        ],
    ));
    assert_eq!(up["upserted"], 1);
    // A batch with one bad event stores nothing.
    let bad = admin(
        &sock,
        &[
            "events.record",
            r#"{"events": [{"user": "a", "kind": "view", "item": "1", "ts": 1700000000}, {"user": "a", "kind": "purchase", "item": "2", "qty": 0, "price": 1.0, "ts": 1700000001}]}"#,
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("qty >= 1") && err.contains("Nothing from this batch was stored"),
        "{err}"
    );
    let stats = ok_json(&admin(&sock, &["stats", "--json"]));
    assert_eq!(stats["events"], 0, "{stats}");
    // A typo in a record is refused with the field it meant.
    let typo = admin(
        &sock,
        &["item.upsert", r#"{"items": [{"id": "x", "prise": 3}]}"#],
    );
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean `price`?"));

    // Popularity first, so that the slot has something to show.
    // Item i viewed by i + 1 users: 210 views.
    let warm = dir.path().join("warm.jsonl");
    std::fs::write(&warm, {
        let mut s = String::new();
        for i in 0..20 {
            for n in 0..=i {
                s += &format!(
                    "{{\"user\": \"w{n}\", \"kind\": \"view\", \"item\": \"{i}\", \"ts\": {}}}\n",
                    1_700_000_000 + n
                );
            }
        }
        s
    })
    .expect("write");
    let out = admin(
        &sock,
        &[
            "events.record",
            "--file",
            warm.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(ok_json_plain(&out)["stored"], 210);

    // Route, serve, click and buy.
    ok_json(&admin(
        &sock,
        &[
            "slot.route",
            "--json",
            "slot=home",
            r#"variants=[{"strategy":"builtin","weight":1}]"#,
        ],
    ));
    let served = ok_json(&admin(
        &sock,
        &[
            "query",
            "--json",
            "scenario=trending",
            "slot=home",
            "user=17850",
            "k=3",
        ],
    ));
    let shown: Vec<String> = served["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(shown.len(), 3, "{served}");
    let events = format!(
        r#"{{"events": [{{"user": "17850", "kind": "click", "item": "{a}", "ts": 1700001000}},
            {{"user": "17850", "kind": "purchase", "item": "{b}", "qty": 1, "price": 5.0, "ts": 1700001060}},
            {{"user": "17850", "kind": "click", "item": "0", "ts": 1700001070}}]}}"#,
        a = shown[0],
        b = shown[1]
    );
    let rec = ok_json(&admin(&sock, &["events.record", "--json", &events]));
    assert_eq!(rec["recorded"], 3);
    let figures = ok_json(&admin(&sock, &["slot.stats", "--json", "slot=home"]));
    let want = serde_json::json!({"serves": 1, "impressions": 3, "clicks": 1, "purchases": 1});
    for (k, v) in want.as_object().expect("object") {
        assert_eq!(&figures[0][k], v, "{k}: {figures}");
    }

    // Restart: the figures come back.
    stop(server);
    let server = serve(d, &sock);
    let again = ok_json(&admin(&sock, &["slot.stats", "--json", "slot=home"]));
    assert_eq!(again, figures, "A/B figures after a restart");
    // Deletes answer with what existed.
    let del = ok_json(&admin(
        &sock,
        &["item.delete", "--json", r#"{"ids": ["19", "no-such"]}"#],
    ));
    assert_eq!(
        (del["deleted"].clone(), del["not_found"].clone()),
        (1.into(), 1.into())
    );
    let del = ok_json(&admin(
        &sock,
        &["user.delete", "--json", r#"{"ids": ["17850"]}"#],
    ));
    assert_eq!(del["deleted"], 1);
    // With its receipt: the customer's events, baskets and the moment their bytes were gone.
    let receipt = &del["receipt"];
    assert!(receipt["events_removed"].as_u64() > Some(0), "{receipt}");
    assert!(
        receipt["baskets_taken_back"].as_u64() > Some(0),
        "{receipt}"
    );
    assert!(receipt["bytes_gone_at_ms"].is_u64(), "{receipt}");
    assert_eq!(
        admin(&sock, &["user.get", "id=17850"]).status.code(),
        Some(3)
    );
    stop(server);
}

/// The `--json` output of `admin --file`: the summary object itself.
fn ok_json_plain(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `serve --config FILE`: the directory, socket and limits come from the file; a key the file
/// should not have stops it before anything is created.
#[test]
fn serve_takes_its_settings_from_a_config_file_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("from-file");
    let sock = dir.path().join("file.sock");
    let file = dir.path().join("recostore.toml");
    std::fs::write(
        &file,
        format!(
            "[serve]\ndir = {:?}\nsocket = {:?}\nmax_connections = 4\n\n[store]\ncooccurrence_lines = 1000\n\n[store.plugins]\ndeadline_ms = 20\n",
            store_dir.to_str().expect("utf-8"),
            sock.to_str().expect("utf-8")
        ),
    )
    .expect("write");
    let child = recostore()
        .args(["serve", "--config"])
        .arg(&file)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(&sock);
    let stats = ok_json(&admin(&sock, &["stats", "--json"]));
    assert_eq!(stats["items"], 0, "{stats}");
    stop(child);
    assert!(
        store_dir.join("db").is_dir(),
        "the store is where the file says"
    );

    let bad = dir.path().join("bad.toml");
    let other = dir.path().join("never-created");
    std::fs::write(
        &bad,
        format!(
            "[serve]\ndir = {:?}\n[store]\ncoocurrence_lines = 5\n",
            other.to_str().expect("utf-8")
        ),
    )
    .expect("write");
    let out = recostore()
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .expect("serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coocurrence_lines"), "{err}");
    assert!(!other.exists(), "nothing created for a refused file");
}

/// `serve --metrics ADDR`: a real HTTP client scrapes the OpenMetrics text, and the figures
/// are the store's (queries by scenario, latency histograms, items, events, slot figures);
/// `stats format=prometheus` over the socket prints the same families.
#[test]
fn serve_exposes_metrics_over_http_and_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let d = store_dir.to_str().expect("utf-8");
    let demo = recostore()
        .args(["demo", "--dir", d, "--items", "200", "--users", "20"])
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sock = dir.path().join("m.sock");
    let server = recostore()
        .args(["serve", "--dir", d, "--metrics", &addr, "--socket"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(&sock);
    for _ in 0..3 {
        ok_json(&admin(
            &sock,
            &["query", "--json", "scenario=trending", "k=3"],
        ));
    }
    ok_json(&admin(
        &sock,
        &[
            "query",
            "--json",
            "scenario=together",
            "item=sku-000001",
            "k=3",
        ],
    ));
    let body = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("scrape")
        .into_string()
        .expect("text");
    // Parse the exposition: `name{labels} value` lines.
    let value = |series: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
    };
    assert_eq!(value("recostore_queries_total{scenario=\"trending\"}"), 3.0);
    assert_eq!(value("recostore_queries_total{scenario=\"together\"}"), 1.0);
    assert_eq!(
        value("recostore_query_latency_seconds_count{scenario=\"trending\"}"),
        3.0
    );
    assert_eq!(
        value("recostore_query_latency_seconds_bucket{le=\"+Inf\",scenario=\"trending\"}"),
        3.0,
    );
    assert_eq!(value("recostore_items"), 200.0);
    assert!(value("recostore_events_total") > 0.0);
    assert!(value("recostore_resident_bytes") > 0.0);
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    // Anything else is a 404.
    match ureq::get(&format!("http://{addr}/nothing")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected a 404, got {other:?}"),
    }
    // The same families over the socket.
    let out = admin(&sock, &["stats", "format=prometheus"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // `--format prometheus` is the same request.
    let flag = admin(&sock, &["stats", "--format", "prometheus"]);
    let flag_text = String::from_utf8_lossy(&flag.stdout);
    assert!(
        flag.status.success(),
        "{}",
        String::from_utf8_lossy(&flag.stderr)
    );
    let families = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(families(&text), families(&flag_text));
    let wrong = admin(&sock, &["ping", "--format", "prometheus"]);
    assert!(!wrong.status.success());
    assert!(
        text.contains("# TYPE recostore_query_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("recostore_queries_total{scenario=\"trending\"} 3"),
        "{text}"
    );
    stop(server);
}
