//! Every admin command over a real socket, as an operator's client sends it.
// Drives the admin socket, plugins included: needs the `admin` and `plugins` features.
#![cfg(all(feature = "admin", feature = "plugins"))]

mod plugin_support;

use std::time::Duration;

use plugin_support::{shop, Wat};
use recostore::admin::protocol::Code;
use recostore::admin::{AdminClient, AdminOptions};
use recostore::{PluginLimits, Store};
use serde_json::{json, Value};

fn client(path: &std::path::Path) -> AdminClient {
    AdminClient::connect(path, Duration::from_secs(30)).expect("connect")
}

fn ok(c: &mut AdminClient, cmd: &str, args: Value) -> Value {
    let r = c.call(cmd, args).expect("response");
    assert!(r.ok, "{cmd}: {:?}", r.error);
    r.result.expect("result")
}

fn code(c: &mut AdminClient, cmd: &str, args: Value) -> Code {
    let r = c.call(cmd, args).expect("response");
    assert!(!r.ok, "{cmd} should fail");
    r.error.expect("error").code
}

#[test]
fn every_command_answers() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("admin.sock");
    let levels = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = levels.clone();
    let server = recostore::admin::AdminServer::start_with(
        &store,
        &sock,
        AdminOptions {
            log_level: Some(std::sync::Arc::new(move |f: &str| {
                if f.contains('[') {
                    return Err("unbalanced".into());
                }
                seen.lock().expect("lock").push(f.to_string());
                Ok(())
            })),
            ..AdminOptions::default()
        },
    )
    .expect("serve");
    let mut c = client(&sock);

    assert_eq!(ok(&mut c, "ping", Value::Null)["pong"], true);
    let help = ok(&mut c, "help", Value::Null);
    assert!(help.as_array().expect("list").len() >= 20);

    // Reads.
    let item = ok(&mut c, "item.get", json!({"id": "i05"}));
    assert_eq!(item["item"]["id"], "i05");
    assert_eq!(item["activity"]["orders"], 6);
    let user = ok(&mut c, "user.get", json!({"id": "buyer"}));
    assert!(
        !user["activity"]["derived_tags"]
            .as_array()
            .expect("derived")
            .is_empty(),
        "{user}"
    );
    assert_eq!(
        code(&mut c, "item.get", json!({"id": "nope"})),
        Code::NotFound
    );
    assert_eq!(code(&mut c, "item.get", json!({"id": 5})), Code::BadArgs);
    // A wrong type names its field; a misspelt field gets the one it meant.
    let r = c.call("item.get", json!({"id": 17850})).expect("response");
    let msg = r.error.expect("error").message;
    assert!(msg.contains("id: invalid type: integer `17850`"), "{msg}");
    let r = c.call("item.get", json!({"idd": "i01"})).expect("response");
    let msg = r.error.expect("error").message;
    assert!(
        msg.contains("unknown field `idd`; did you mean `id`?"),
        "{msg}"
    );
    let r = c.call("item.gett", json!({"id": "i01"})).expect("response");
    let msg = r.error.expect("error").message;
    assert!(msg.contains("did you mean `item.get`?"), "{msg}");

    // Scenario queries, with a filter.
    let q = ok(
        &mut c,
        "query",
        json!({"scenario": "trending", "k": 3, "filter": {"categories": ["cat1"]}}),
    );
    let ids: Vec<&str> = q["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["i29", "i25", "i21"], "most popular in cat1");
    assert_eq!(q["ranked_by"]["strategy"], "builtin");
    let sim = ok(
        &mut c,
        "query",
        json!({"scenario": "similar", "item": "i00", "k": 2}),
    );
    assert_eq!(sim["results"].as_array().expect("results").len(), 2);
    // The buyer's purchases form one basket (an implicit session): every item not tagged as
    // i05 is (its one tag, colour:c2, matched in full means a variant, not a complement)
    // completes it, seen together exactly once.
    let comp = ok(
        &mut c,
        "query",
        json!({"scenario": "complements", "item": "i05", "k": 50}),
    );
    let comp = comp["results"].as_array().expect("results");
    assert_eq!(comp.len(), 20, "{comp:?}");
    for r in comp {
        let n: u32 = r["id"].as_str().expect("id")[1..].parse().expect("number");
        assert_ne!(n % 3, 2, "{r}");
        let reason = &r["reasons"][0];
        assert_eq!(reason["kind"], "complement", "{r}");
        assert_eq!(reason["bought_together"], 1, "{r}");
        assert_eq!(reason["exact"], true, "{r}");
    }
    let subs = ok(
        &mut c,
        "query",
        json!({"scenario": "substitutes", "item": "i05", "k": 5}),
    );
    for r in subs["results"].as_array().expect("results") {
        assert_eq!(r["reasons"][0]["kind"], "substitute", "{r}");
    }
    assert_eq!(
        code(&mut c, "query", json!({"scenario": "nonsense"})),
        Code::BadArgs
    );
    let like = ok(&mut c, "users.like", json!({"user": "buyer", "k": 3}));
    assert_eq!(like["scenario"], "users-like", "{like}");
    assert!(like["results"].is_array(), "{like}");
    // One shape for every answer, whatever asked (issue 22, item 11): the same keys from
    // each scenario and from users.like, and the scenario's own name in it.
    for (cmd, args) in [
        ("query", json!({"scenario": "trending", "k": 2})),
        (
            "query",
            json!({"scenario": "similar", "item": "i00", "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "profile", "tags": [["colour:c1", 1.0]], "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "together", "item": "i05", "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "complements", "item": "i05", "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "substitutes", "item": "i05", "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "for-user", "user": "buyer", "k": 2}),
        ),
        (
            "query",
            json!({"scenario": "cart", "items": ["i05"], "k": 2}),
        ),
        ("users.like", json!({"user": "buyer", "k": 2})),
    ] {
        let a = ok(&mut c, cmd, args.clone());
        let mut keys: Vec<&str> = a
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["micros", "next_cursor", "ranked_by", "results", "scenario"],
            "{cmd} {args}: {a}"
        );
        let name = args["scenario"].as_str().unwrap_or("users-like");
        assert_eq!(a["scenario"], name, "{a}");
        assert!(a["micros"].is_u64(), "{a}");
        assert!(a["ranked_by"]["strategy"].is_string(), "{a}");
    }
    let seg = ok(&mut c, "segment.users", json!({"name": "buyers"}));
    assert_eq!(seg, json!(["buyer"]));

    // Plugins and slots.
    let wasm = dir.path().join("rev.wat");
    std::fs::write(
        &wasm,
        Wat {
            sign: -1.0,
            ..Wat::default()
        }
        .text(),
    )
    .expect("write");
    let up = dir.path().join("up.wat");
    std::fs::write(&up, Wat::default().text()).expect("write");
    let info = ok(&mut c, "plugin.load", json!({"name": "rev", "path": wasm}));
    assert_eq!(info["version"], 1);
    let info = ok(&mut c, "plugin.swap", json!({"name": "rev", "path": up}));
    assert_eq!(info["version"], 2);
    assert_eq!(
        code(&mut c, "plugin.swap", json!({"name": "other", "path": up})),
        Code::NotFound
    );
    let info = ok(&mut c, "plugin.rollback", json!({"name": "rev"}));
    assert_eq!(
        (info["version"].clone(), info["previous"].clone()),
        (json!(1), json!(2))
    );
    let list = ok(&mut c, "plugin.list", Value::Null);
    assert_eq!(list[0]["name"], "rev");
    ok(
        &mut c,
        "slot.route",
        json!({"slot": "home", "variants": [{"strategy": "rev", "weight": 1}]}),
    );
    let served = ok(
        &mut c,
        "query",
        json!({"scenario": "trending", "k": 2, "slot": "home", "user": "buyer"}),
    );
    assert_eq!(served["ranked_by"]["strategy"], "rev");
    let figures = ok(&mut c, "slot.stats", json!({"slot": "home"}));
    assert_eq!(figures[0]["impressions"], 2);
    ok(&mut c, "plugin.enable", json!({"name": "rev"}));
    assert_eq!(
        code(&mut c, "plugin.unload", json!({"name": "rev"})),
        Code::Failed,
        "routed"
    );
    ok(&mut c, "slot.remove", json!({"slot": "home"}));
    ok(&mut c, "plugin.unload", json!({"name": "rev"}));
    let bad = dir.path().join("bad.wat");
    std::fs::write(&bad, "(module)").expect("write");
    assert_eq!(
        code(&mut c, "plugin.load", json!({"name": "bad", "path": bad})),
        Code::Failed
    );

    // Stats after all that.
    let stats = ok(&mut c, "stats", Value::Null);
    assert_eq!(stats["items"], 30);
    assert_eq!(stats["users"], 1);
    assert!(stats["events"].as_u64().expect("events") >= 465);
    // Five queries, and the eight of the shape check (users.like is not a scenario query).
    assert_eq!(
        stats["queries"]["count"], 13,
        "thirteen queries ran: {stats}"
    );
    assert_eq!(
        stats["cooccurrence"]["bought_lines"], 30,
        "one basket of 30: {stats}"
    );
    assert!(stats["queries"]["p50_us"].as_f64().expect("p50") > 0.0);
    assert!(stats["memory"]["resident_bytes"].as_u64().expect("rss") > 0);
    assert!(stats["segment"]["generation"].is_u64());

    // Maintenance.
    let r = ok(&mut c, "segment.rebuild", Value::Null);
    assert!(r["generation"].as_u64().expect("generation") >= 1);
    ok(&mut c, "flush", Value::Null);
    let r = ok(&mut c, "checkpoint", Value::Null);
    assert_eq!(r["checkpointed"], true);
    assert_eq!(
        code(&mut c, "events.prune", Value::Null),
        Code::BadArgs,
        "no retention configured and none given"
    );
    let r = ok(&mut c, "events.prune", json!({"keep_secs": u64::MAX}));
    assert_eq!(
        (r["events"].as_u64(), r["horizon"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    let r = ok(&mut c, "events.prune", json!({"keep_secs": 0}));
    assert!(r["chunks_read"].as_u64().expect("chunks read") > 0, "{r}");
    let r = ok(&mut c, "reclaim", Value::Null);
    assert!(r["keys"].as_u64().expect("keys") > 30, "{r}");
    assert!(r["live_bytes"].as_u64() <= r["bytes_after"].as_u64(), "{r}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("CURRENT")).expect("CURRENT"),
        "db.1\n"
    );
    assert!(!dir.path().join("db").exists(), "the old files are gone");
    let item = ok(&mut c, "item.get", json!({"id": "i05"}));
    assert_eq!(item["item"]["id"], "i05", "reads go on from the new files");
    assert_eq!(item["activity"]["orders"], 6);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let backup = elsewhere.path().join("backup");
    assert_eq!(
        code(&mut c, "backup", json!({"path": dir.path().join("inside")})),
        Code::Failed,
        "not inside the store"
    );
    let b = ok(&mut c, "backup", json!({"path": backup}));
    assert!(b["keys"].as_u64().expect("keys") > 30);
    assert_eq!(
        code(&mut c, "backup", json!({"path": backup})),
        Code::Failed,
        "never overwritten"
    );
    let exported = ok(
        &mut c,
        "export",
        json!({"path": elsewhere.path().join("export")}),
    );
    assert_eq!(exported["items"], 30);
    assert!(elsewhere.path().join("export/events.jsonl").exists());
    ok(&mut c, "log.level", json!({"filter": "debug"}));
    assert_eq!(
        code(&mut c, "log.level", json!({"filter": "a["})),
        Code::BadArgs
    );
    assert_eq!(*levels.lock().expect("lock"), ["debug"]);
    assert_eq!(code(&mut c, "no.such", Value::Null), Code::UnknownCommand);

    server.shutdown().expect("shutdown");
    drop(store);
    // The backup is a store of its own with the same records and behaviour.
    let copy = Store::open(&backup).expect("open backup");
    assert_eq!(copy.stats().items, 30);
    assert_eq!(copy.item_activity("i05").expect("activity").orders, 6);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("a.sock");
    let _server = recostore::admin::AdminServer::start(&store, &sock).expect("serve");
    let mut c = client(&sock);
    let mut lines = String::new();
    for i in 0..50 {
        lines.push_str(&format!(
            "{{\"id\": {i}, \"cmd\": \"item.get\", \"args\": {{\"id\": \"i{:02}\"}}}}\n",
            i % 30
        ));
    }
    c.send_raw(lines.as_bytes()).expect("send");
    for i in 0..50 {
        let r = c.read_response().expect("response");
        assert_eq!(r.id, Some(json!(i)));
        assert_eq!(
            r.result.expect("result")["item"]["id"],
            format!("i{:02}", i % 30)
        );
    }
}
