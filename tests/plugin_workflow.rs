//! The whole path from "I wrote a strategy" to "it serves everyone", driven through the admin
//! socket as an operator would, with a candidate that is deliberately worse: replay, shadow,
//! interleave, then promotion under guardrails and the automatic rollback. The candidate
//! never wins a step, and when promoted anyway it is rolled back.
//!
//! The oracles are the test's own: the shadow's overlap and rank correlation are recomputed
//! here from the candidate's own answers to the same asks (no writes run meanwhile, so every
//! snapshot is the same), and the interleaving's wins and losses from the teams each answer
//! reports and the clicks the test's model made. A shopper clicks the first item of their own
//! colour in the top three.
// Drives the admin socket, plugins included: needs the `admin` and `plugins` features.
#![cfg(all(feature = "admin", feature = "plugins"))]

mod plugin_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use plugin_support::{call, colour_shop, relaxed, wat_file, Wat};
use recostore::admin::protocol::Code;
use recostore::admin::{AdminClient, AdminServer};
use recostore::plugin::{Mode, Variant};
use recostore::{Ask, Config, PluginLimits, Scenario, Store};
use serde_json::{json, Value};

const USERS: usize = 300;

fn open(dir: &Path, limits: PluginLimits) -> Store {
    Store::open_with(dir, Config::default().plugins(limits)).expect("open")
}

fn shop(dir: &Path, limits: PluginLimits) -> Store {
    let store = open(dir, limits);
    colour_shop(&store, USERS);
    store
}

fn ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// The model's click for user `u` on `items`: the first of their colour in the top three.
fn click_of(u: usize, items: &[String]) -> Option<String> {
    items
        .iter()
        .take(3)
        .find(|id| id[1..].parse::<usize>().is_ok_and(|i| i % 3 == u % 3))
        .cloned()
}

/// Record user `u`'s click on `item`, at the next time stamp.
fn click(c: &mut AdminClient, u: usize, item: &str, ts: &mut u64) {
    *ts += 1;
    call(
        c,
        "events.record",
        json!({"events": [{"user": format!("u{u}"), "item": item, "kind": "click", "ts": *ts}]}),
    );
}

fn for_user(u: usize) -> Value {
    json!({"scenario": "for-user", "user": format!("u{u}"), "slot": "home", "k": 6, "exclude_seen": true})
}

/// The row of `strategy` in `mode` among `slot.stats`.
fn row<'a>(stats: &'a Value, strategy: &str, mode: &str) -> &'a Value {
    stats
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["strategy"] == json!(strategy) && r["mode"] == json!(mode))
        .unwrap_or_else(|| panic!("no {mode} row for {strategy} in {stats}"))
}

/// Wait until every sampled shadow answer has been ranked or dropped.
fn drained(c: &mut AdminClient, strategy: &str) -> Value {
    let started = Instant::now();
    loop {
        let stats = call(c, "slot.stats", json!({"slot": "home"}));
        let s = &row(&stats, strategy, "shadow")["shadow"];
        let done = s["calls"].as_u64().unwrap_or(0) + s["dropped"].as_u64().unwrap_or(0);
        if done == s["sampled"].as_u64().unwrap_or(u64::MAX) {
            return stats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the shadow worker never caught up: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Overlap@k and Kendall's tau over the shared items, computed here from scratch.
fn overlap_and_tau(served: &[String], shadow: &[String]) -> (f64, Option<f64>) {
    let longest = served.len().max(shadow.len());
    let pos: HashMap<&str, usize> = served
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let shared: Vec<(usize, usize)> = shadow
        .iter()
        .enumerate()
        .filter_map(|(j, s)| pos.get(s.as_str()).map(|&i| (i, j)))
        .collect();
    let overlap = if longest == 0 {
        1.0
    } else {
        shared.len() as f64 / longest as f64
    };
    if shared.len() < 2 {
        return (overlap, None);
    }
    let mut score = 0i64;
    let mut pairs = 0i64;
    for x in &shared {
        for y in &shared {
            if x.1 < y.1 {
                pairs += 1;
                score += if x.0 < y.0 { 1 } else { -1 };
            }
        }
    }
    (overlap, Some(score as f64 / pairs as f64))
}

#[test]
fn a_worse_candidate_loses_every_step_and_is_rolled_back_when_promoted_anyway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let modules = tempfile::tempdir().expect("tempdir");
    let good = wat_file(modules.path(), "good.wat", Wat::default());
    let worse = wat_file(
        modules.path(),
        "worse.wat",
        Wat {
            sign: -1.0,
            ..Wat::default()
        },
    );
    // A queue and CPU share large enough that no sampled answer is dropped: the oracle below
    // compares every one.
    let limits = relaxed().shadow(4096, 1.0);
    let sock = dir.path().join("admin.sock");
    let mut ts = 1_000u64;
    let before_restart;
    {
        let store = shop(dir.path(), limits.clone());
        let _server = AdminServer::start(&store, &sock).expect("serve");
        let mut c = AdminClient::connect(&sock, Duration::from_secs(60)).expect("connect");
        call(
            &mut c,
            "plugin.load",
            json!({"name": "current", "path": good}),
        );
        call(
            &mut c,
            "slot.route",
            json!({"slot": "home", "variants": [{"strategy": "current", "weight": 1}]}),
        );
        // History: the current strategy serves and shoppers click.
        for n in 0..400 {
            let u = n % USERS;
            let a = call(&mut c, "query", for_user(u));
            if let Some(item) = click_of(u, &ids(&a)) {
                click(&mut c, u, &item, &mut ts);
            }
        }

        // 1. Replay: the candidate on that history, against the serving strategy.
        let r = call(
            &mut c,
            "plugin.replay",
            json!({"path": worse, "against": "current", "since": 1_200}),
        );
        assert!(
            r["difference"]["ndcg"]["high"].as_f64().expect("high") < 0.0,
            "the replay finds it worse: {r}"
        );

        // 2. Shadow: it ranks every answer of the slot off the request path; none is shown.
        call(
            &mut c,
            "plugin.load",
            json!({"name": "cand", "path": worse}),
        );
        let e = c
            .call(
                "slot.route",
                json!({"slot": "home", "variants": [{"strategy": "current", "weight": 1},
                    {"strategy": "cand", "weight": 1, "mode": "shadow"}]}),
            )
            .expect("response");
        let e = e.error.expect("a weighted shadow is refused");
        assert_eq!(e.code, Code::Failed);
        assert!(e.message.contains("takes no weight"), "{}", e.message);
        // A serving variant without a weight is an error, not a variant that serves no one.
        let e = c
            .call(
                "slot.route",
                json!({"slot": "home", "variants": [{"strategy": "current"}]}),
            )
            .expect("response");
        let e = e.error.expect("refused");
        assert_eq!(e.code, Code::BadArgs);
        assert!(e.message.contains("needs a `weight`"), "{}", e.message);
        let routed = call(
            &mut c,
            "slot.route",
            json!({"slot": "home", "variants": [{"strategy": "current", "weight": 1},
                {"strategy": "cand", "mode": "shadow"}]}),
        );
        assert_eq!(routed["variants"][1]["mode"], json!("shadow"));
        // No writes in this phase, so the candidate's own answer to each ask below is the
        // list its shadow ranked for the same ask.
        let (mut overlaps, mut taus) = (Vec::new(), Vec::new());
        for u in 0..USERS {
            let a = call(&mut c, "query", for_user(u));
            assert_eq!(a["ranked_by"]["strategy"], json!("current"), "{a}");
            assert_eq!(a["ranked_by"]["fallback"], Value::Null);
            let mut own = for_user(u);
            own["strategy"] = json!("cand");
            own.as_object_mut().expect("ask").remove("slot");
            let theirs = call(&mut c, "query", own);
            let (o, t) = overlap_and_tau(&ids(&a), &ids(&theirs));
            overlaps.push(o);
            taus.extend(t);
        }
        let stats = drained(&mut c, "cand");
        let s = &row(&stats, "cand", "shadow")["shadow"];
        assert_eq!(s["sampled"], json!(USERS), "{s}");
        assert_eq!(
            (s["dropped"].clone(), s["calls"].clone()),
            (json!(0), json!(USERS))
        );
        assert_eq!(s["compared"], json!(USERS));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let overlap = s["overlap"].as_f64().expect("overlap");
        assert!(
            (overlap - mean(&overlaps)).abs() < 1e-9,
            "{overlap} vs {}",
            mean(&overlaps)
        );
        assert_eq!(s["correlated"], json!(taus.len()));
        let tau = s["rank_correlation"].as_f64().expect("tau");
        assert!((tau - mean(&taus)).abs() < 1e-9, "{tau} vs {}", mean(&taus));
        assert!(overlap < 1.0, "a reversed strategy shows other items: {s}");
        for side in ["would_show", "served_shows"] {
            assert_eq!(
                s[side],
                json!({"out_of_stock": 0, "filtered": 0, "purchased": 0}),
                "{side}"
            );
        }
        // The shadow served no one: no A/B row for it, and the serving figures grew by the
        // answers above.
        assert!(stats
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["strategy"] != json!("cand") || r["mode"] == json!("shadow")));

        // 3. Interleave: both rank every answer, merged by team draft.
        call(
            &mut c,
            "slot.route",
            json!({"slot": "home", "variants": [{"strategy": "current", "mode": "interleave"},
                {"strategy": "cand", "mode": "interleave"}]}),
        );
        let (mut wins, mut losses, mut first) = (0u64, 0u64, [0u64; 2]);
        for n in 0..600 {
            let u = n % USERS;
            let a = call(&mut c, "query", for_user(u));
            let items = ids(&a);
            let teams: Vec<String> = a["ranked_by"]["interleaved"]["teams"]
                .as_array()
                .expect("teams")
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            assert_eq!(teams.len(), items.len(), "{a}");
            assert_eq!(a["ranked_by"]["interleaved"]["strategy"], json!("cand"));
            if let Some(t) = teams.first() {
                first[usize::from(t == "cand")] += 1;
            }
            if let Some(item) = click_of(u, &items) {
                let at = items.iter().position(|i| *i == item).expect("shown");
                if teams[at] == "current" {
                    wins += 1;
                } else {
                    losses += 1;
                }
                click(&mut c, u, &item, &mut ts);
            }
        }
        // Each team leads about half the lists.
        assert!(first[0].min(first[1]) > 200, "{first:?}");
        let stats = call(&mut c, "slot.stats", json!({"slot": "home"}));
        let (cur, cand) = (
            &row(&stats, "current", "interleave")["interleave"],
            &row(&stats, "cand", "interleave")["interleave"],
        );
        assert_eq!(
            (
                cur["wins"].clone(),
                cur["losses"].clone(),
                cur["ties"].clone()
            ),
            (json!(wins), json!(losses), json!(0)),
            "{stats}"
        );
        assert_eq!(
            (cand["wins"].clone(), cand["losses"].clone()),
            (json!(losses), json!(wins))
        );
        assert_eq!(cur["answers"], json!(600));
        assert!(wins > 2 * losses, "{wins} against {losses}");
        let p = cur["p_value"].as_f64().expect("p");
        assert!(p < 1e-6, "decided: p = {p}");
        assert_eq!(cand["p_value"], cur["p_value"]);

        // 4. Promoted anyway, under guardrails, into the slot's serving strategy.
        call(
            &mut c,
            "slot.route",
            json!({"slot": "home", "variants": [{"strategy": "current", "weight": 1}]}),
        );
        let p = call(
            &mut c,
            "plugin.promote",
            json!({"name": "current", "path": worse, "guardrails": {
                "min_impressions": 600, "min_calls": 50, "alpha": 0.001, "window_secs": 3600,
                "max_p99_ratio": 1000.0}}),
        );
        assert_eq!(p["version"], json!(2));
        // 5. ...and rolled back on its own once its CTR is judged.
        let mut back = None;
        for n in 0..400 {
            let u = n % USERS;
            let a = call(&mut c, "query", for_user(u));
            if a["ranked_by"]["version"] == json!(1) {
                back = Some(n);
                break;
            }
            if let Some(item) = click_of(u, &ids(&a)) {
                click(&mut c, u, &item, &mut ts);
            }
        }
        assert!(back.is_some(), "version 1 serves again");
        let info = call(&mut c, "plugin.list", Value::Null);
        let current = info
            .as_array()
            .expect("plugins")
            .iter()
            .find(|p| p["name"] == json!("current"))
            .expect("current");
        assert_eq!(current["version"], json!(1));
        assert_eq!(current["rollbacks"][0]["from_version"], json!(2));
        call(&mut c, "checkpoint", Value::Null);
        before_restart = serde_json::to_value(store.plugins().variant_stats(None)).expect("json");
    }
    // Every figure of the workflow survives a restart.
    let store = open(dir.path(), limits);
    let after = serde_json::to_value(store.plugins().variant_stats(None)).expect("json");
    assert_eq!(after, before_restart);
    assert!(after
        .as_array()
        .expect("rows")
        .iter()
        .any(|r| r["mode"] == json!("interleave")));
}

/// What a shadow can do wrong, it does on the worker: a trapping shadow is counted and never
/// disabled, a tiny queue drops (counted) instead of waiting, a sample rate samples that
/// share, and the answers served are the serving strategy's, untouched.
#[test]
fn a_failing_or_lagging_shadow_never_touches_what_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A queue of 2 and a hundredth of a core: most sampled answers must be dropped.
    let store = shop(dir.path(), relaxed().shadow(2, 0.01));
    store
        .plugins()
        .load("current", Wat::default().text().as_bytes())
        .expect("load");
    // Traps in every scenario but for-user (code 5), which the load's smoke run uses.
    let trap = Wat {
        hostile: "unreachable",
        ..Wat::default()
    };
    store
        .plugins()
        .load("trap", trap.text().as_bytes())
        .expect("load");
    store
        .plugins()
        .load("sampled", Wat::default().text().as_bytes())
        .expect("load");
    store
        .plugins()
        .set_slot(
            "home",
            vec![Variant::new("current", 1), Variant::shadow("trap", 1.0)],
        )
        .expect("route");
    store
        .plugins()
        .set_slot(
            "cart",
            vec![Variant::new("current", 1), Variant::shadow("sampled", 0.25)],
        )
        .expect("route");
    let err = store.plugins().unload("trap").expect_err("shadowing");
    assert!(err.to_string().contains("home"), "{err}");
    let rounds = 2_000;
    for n in 0..rounds {
        let ask = |slot: &str| {
            Ask::new(Scenario::Similar {
                item: format!("i{:02}", n % 60),
            })
            .user(format!("u{}", n % USERS))
            .slot(slot)
            .k(5)
        };
        for slot in ["home", "cart"] {
            let served = store.serve(&ask(slot)).expect("serve");
            assert_eq!(served.ranked_by.strategy, "current");
            assert_eq!(served.ranked_by.fallback, None);
            assert_eq!(served.items.len(), 5);
        }
    }
    let stats = |slot: &str, who: &str| {
        let started = Instant::now();
        loop {
            let all = store.plugins().variant_stats(Some(slot));
            let s = all
                .iter()
                .find(|r| r.strategy == who && r.mode == Mode::Shadow)
                .and_then(|r| r.shadow.clone())
                .expect("shadow row");
            if s.calls + s.dropped == s.sampled {
                return s;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let t = stats("home", "trap");
    assert_eq!(t.sampled, rounds as u64);
    assert!(
        t.dropped > t.calls,
        "a hundredth of a core drops most: {t:?}"
    );
    assert_eq!(t.faults.trap, t.calls, "{t:?}");
    assert_eq!(t.compared, 0);
    let info = store.plugins().info("trap").expect("info");
    assert_eq!(info.disabled, None, "a shadow's faults disable nothing");
    // Its calls never reach the version's own counters (the load's smoke run is the one
    // call there), which feed auto-disable and the guardrails.
    assert_eq!((info.calls, info.faults.total()), (1, 0), "{info:?}");
    let s = stats("cart", "sampled");
    // Binomial(2000, 0.25): mean 500, sd 19.4; five sd either side.
    assert!((403..=597).contains(&s.sampled), "{s:?}");
    assert_eq!(s.sample, Some(0.25));
    // The serving variant's A/B figures count every answer, and nothing of the shadows.
    let served = store.plugins().variant_stats(Some("home"));
    let current = served
        .iter()
        .find(|r| r.strategy == "current")
        .expect("current");
    assert_eq!((current.serves, current.fallbacks), (rounds as u64, 0));
    assert_eq!(served.len(), 2, "{served:?}");
    // Answers sampled right before the close: the close drops what waits and the store
    // opens again at once in this process (no task holds its files).
    for n in 0..50 {
        let ask = Ask::new(Scenario::Similar {
            item: format!("i{:02}", n % 60),
        })
        .user("u1")
        .slot("home");
        store.serve(&ask).expect("serve");
    }
    drop(store);
    let store = open(dir.path(), relaxed());
    let t2 = store
        .plugins()
        .variant_stats(Some("home"))
        .into_iter()
        .find_map(|r| r.shadow)
        .expect("shadow figures survive");
    assert_eq!(t2.sampled, t.sampled + 50);
    // The routing, shadows and their sample rates included, is back as it was.
    let slots = store.plugins().slots();
    let cart = &slots.iter().find(|(n, _)| n == "cart").expect("cart").1;
    assert_eq!(
        *cart,
        vec![Variant::new("current", 1), Variant::shadow("sampled", 0.25)]
    );
    assert_eq!(t2.calls + t2.dropped, t2.sampled, "{t2:?}");
}
