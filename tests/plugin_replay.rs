//! Replay (`recostore::eval::replay`): a candidate strategy and the current one ranking the
//! same asks on the store's own history, checked against an oracle that shares none of the
//! replay's code: a second store fed only the events before the cut, asked through the public
//! API, and recall, NDCG, coverage and the changed share computed here in f64 from the raw
//! events after the cut.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use std::collections::{HashMap, HashSet};

use plugin_support::{relaxed, Wat};
use recostore::eval::replay::{replay, ReplayOptions, ReplayReport, Split};
use recostore::{Ask, Config, Error, Event, Item, Scenario, Store};

const ITEMS: usize = 200;
const USERS: usize = 120;
const GROUPS: usize = 10;
const CUT: u64 = 50_000;

fn items() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| {
            Item::new(
                format!("i{i:03}"),
                [(format!("group:g{}", i % GROUPS), 1.0)],
            )
            .category(format!("c{}", i % GROUPS))
            .price(10.0 + i as f32)
            .stock(5)
        })
        .collect()
}

/// Every user views items of their own group: six before the cut and three new ones after
/// it (a user in three has one more view after the cut of an item seen before it, which is
/// not a new item and must not count).
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for u in 0..USERS {
        let g = u % GROUPS;
        let own = |n: usize| format!("i{:03}", (g + GROUPS * ((u / GROUPS + n * 7) % 20)) % ITEMS);
        for n in 0..6 {
            out.push(Event::view(
                format!("u{u}"),
                own(n),
                1_000 + (u * 100 + n) as u64,
            ));
        }
        for n in 6..9 {
            out.push(Event::view(
                format!("u{u}"),
                own(n),
                CUT + (u * 100 + n) as u64,
            ));
        }
        if u % 3 == 0 {
            out.push(Event::view(format!("u{u}"), own(0), CUT + 99_000));
        }
    }
    out
}

fn store_with(events: &[Event]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("open");
    store.upsert_items(&items()).expect("items");
    store.record_events(events).expect("events");
    (dir, store)
}

fn reverse() -> Vec<u8> {
    Wat {
        sign: -1.0,
        ..Wat::default()
    }
    .text()
    .into_bytes()
}

fn opts(split: Split) -> ReplayOptions {
    ReplayOptions {
        split,
        ..ReplayOptions::default()
    }
}

/// The oracle's figures for one side, and each asked user's answer.
struct Oracle {
    recall: f64,
    ndcg: f64,
    coverage: f64,
    answers: HashMap<String, Vec<String>>,
}

fn oracle(
    train: &Store,
    strategy: Option<&str>,
    test: &HashMap<String, HashSet<String>>,
    k: usize,
) -> Oracle {
    let (mut recall, mut ndcg) = (0.0f64, 0.0f64);
    let mut covered = HashSet::new();
    let mut answers = HashMap::new();
    for (user, want) in test {
        let mut ask = Ask::new(Scenario::ForUser)
            .user(user.clone())
            .k(k)
            .exclude_seen();
        if let Some(s) = strategy {
            ask = ask.strategy(s);
        }
        let got: Vec<String> = train
            .recommend(&ask)
            .expect("ask")
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut dcg = 0.0;
        let mut hits = 0;
        for (pos, id) in got.iter().enumerate() {
            if want.contains(id) {
                hits += 1;
                dcg += 1.0 / (pos as f64 + 2.0).log2();
            }
        }
        let ideal: f64 = (0..want.len().min(k))
            .map(|p| 1.0 / (p as f64 + 2.0).log2())
            .sum();
        recall += f64::from(hits) / want.len() as f64;
        ndcg += dcg / ideal;
        covered.extend(got.iter().cloned());
        answers.insert(user.clone(), got);
    }
    let n = test.len() as f64;
    Oracle {
        recall: recall / n,
        ndcg: ndcg / n,
        coverage: covered.len() as f64 / ITEMS as f64,
        answers,
    }
}

/// What each user did after the cut that they had not done before it, from the raw events.
fn test_sets(events: &[Event], cut: u64) -> HashMap<String, HashSet<String>> {
    let mut before: HashMap<String, HashSet<String>> = HashMap::new();
    for e in events.iter().filter(|e| e.ts < cut) {
        before
            .entry(e.user.clone())
            .or_default()
            .insert(e.item.clone().expect("item"));
    }
    let mut after: HashMap<String, HashSet<String>> = HashMap::new();
    for e in events.iter().filter(|e| e.ts >= cut) {
        let item = e.item.clone().expect("item");
        let seen = before.get(&e.user);
        if seen.is_some_and(|s| !s.contains(&item)) {
            after.entry(e.user.clone()).or_default().insert(item);
        }
    }
    after
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() < 1e-9,
        "{what}: replay says {a}, the oracle {b}"
    );
}

fn check_against_oracle(r: &ReplayReport, events: &[Event], cut: u64) {
    let train_events: Vec<Event> = events.iter().filter(|e| e.ts < cut).cloned().collect();
    let (_d, train) = store_with(&train_events);
    train.plugins().load("reverse", &reverse()).expect("load");
    let test = test_sets(events, cut);
    let k = r.k;
    let cand = oracle(&train, Some("reverse"), &test, k);
    let cur = oracle(&train, None, &test, k);
    assert_eq!(r.since, cut);
    assert_eq!(r.users, test.len());
    assert_eq!(r.train_events, train_events.len() as u64);
    assert_eq!(
        r.test_items,
        test.values().map(|s| s.len() as u64).sum::<u64>()
    );
    close(r.candidate.recall, cand.recall, "candidate recall");
    close(r.candidate.ndcg, cand.ndcg, "candidate ndcg");
    close(r.candidate.coverage, cand.coverage, "candidate coverage");
    close(r.current.recall, cur.recall, "current recall");
    close(r.current.ndcg, cur.ndcg, "current ndcg");
    close(r.current.coverage, cur.coverage, "current coverage");
    let d = &r.difference;
    close(
        d.recall.value,
        cand.recall - cur.recall,
        "recall difference",
    );
    close(d.ndcg.value, cand.ndcg - cur.ndcg, "ndcg difference");
    close(
        d.coverage,
        cand.coverage - cur.coverage,
        "coverage difference",
    );
    let changed: f64 = test
        .keys()
        .map(|u| {
            let (a, b) = (&cand.answers[u], &cur.answers[u]);
            if a.is_empty() {
                0.0
            } else {
                a.iter().filter(|i| !b.contains(i)).count() as f64 / a.len() as f64
            }
        })
        .sum::<f64>()
        / test.len() as f64;
    close(d.changed, changed, "changed share");
    for i in [d.recall, d.ndcg] {
        assert!(i.low <= i.value && i.value <= i.high, "{i:?}");
    }
}

#[test]
fn a_worse_strategy_is_found_worse_and_every_figure_matches_the_oracle() {
    let events = events();
    let (_d, store) = store_with(&events);
    let r = replay(&store, &reverse(), b"", &opts(Split::At(CUT))).expect("replay");
    check_against_oracle(&r, &events, CUT);
    assert_eq!(r.current.strategy, "builtin");
    assert_eq!((r.candidate.fallbacks, r.current.fallbacks), (0, 0));
    assert!(
        r.current.recall > 0.5,
        "the built-in ranker finds the own group: {r:?}"
    );
    let d = &r.difference;
    assert!(
        d.recall.high < 0.0 && d.ndcg.high < 0.0,
        "a significant loss: {d:?}"
    );
    assert!(d.changed > 0.5, "{d:?}");

    // The default cut: before the latest 20% of the logged interest events, computed here
    // from the raw times.
    let mut times: Vec<u64> = events.iter().map(|e| e.ts).collect();
    times.sort_unstable();
    let cut = times[(times.len() as f64 * 0.8).floor() as usize];
    let r = replay(&store, &reverse(), b"", &ReplayOptions::default()).expect("replay");
    check_against_oracle(&r, &events, cut);

    // `Last`: that long before the newest event.
    let newest = *times.last().expect("events");
    let r = replay(&store, &reverse(), b"", &opts(Split::Last(newest - CUT))).expect("replay");
    assert_eq!(r.since, CUT);
}

#[test]
fn a_strategy_against_itself_differs_by_nothing_and_serving_figures_stay_untouched() {
    let events = events();
    let (_d, store) = store_with(&events);
    store.plugins().load("reverse", &reverse()).expect("load");
    let before = store.plugins().info("reverse").expect("info");
    let r = replay(
        &store,
        &reverse(),
        b"",
        &ReplayOptions {
            against: "reverse".into(),
            split: Split::At(CUT),
            ..ReplayOptions::default()
        },
    )
    .expect("replay");
    let d = &r.difference;
    for i in [d.recall, d.ndcg] {
        assert_eq!((i.value, i.low, i.high), (0.0, 0.0, 0.0), "{d:?}");
    }
    assert_eq!((d.coverage, d.changed), (0.0, 0.0));
    assert_eq!(r.current.strategy, "reverse");
    // The replay ranked with private copies: the serving version's calls did not move, and
    // nothing was loaded into the store's registry.
    let after = store.plugins().info("reverse").expect("info");
    assert_eq!(before.calls, after.calls);
    assert_eq!(store.plugins().list().len(), 1);
}

#[test]
fn bad_options_and_modules_get_errors_that_say_what_to_do() {
    let events = events();
    let (_d, store) = store_with(&events);
    let invalid = |o: ReplayOptions, says: &str| match replay(&store, &reverse(), b"", &o) {
        Err(Error::InvalidQuery { reason }) => assert!(reason.contains(says), "{reason}"),
        other => panic!("{o:?}: {other:?}"),
    };
    invalid(
        ReplayOptions {
            k: 0,
            ..opts(Split::At(CUT))
        },
        "k 0",
    );
    invalid(
        ReplayOptions {
            k: usize::MAX,
            ..opts(Split::At(CUT))
        },
        "between 1 and",
    );
    invalid(
        ReplayOptions {
            resamples: 5,
            ..opts(Split::At(CUT))
        },
        "resamples 5",
    );
    invalid(
        ReplayOptions {
            resamples: usize::MAX,
            ..opts(Split::At(CUT))
        },
        "resamples",
    );
    invalid(
        ReplayOptions {
            scenario: "trending".into(),
            ..opts(Split::At(CUT))
        },
        "for-user and cart",
    );
    invalid(opts(Split::Share(f64::NAN)), "between 0 and 1");
    invalid(opts(Split::Share(1.0)), "between 0 and 1");
    // A cut after everything (or before everything) leaves nobody to score.
    invalid(opts(Split::At(u64::MAX)), "cut earlier");
    invalid(opts(Split::At(0)), "nothing to score");
    invalid(opts(Split::Last(u64::MAX)), "nothing to score");
    match replay(
        &store,
        &reverse(),
        b"",
        &ReplayOptions {
            against: "nope".into(),
            ..opts(Split::At(CUT))
        },
    ) {
        Err(Error::PluginNotFound { name, .. }) => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
    match replay(&store, b"not a module", b"", &opts(Split::At(CUT))) {
        Err(Error::PluginRejected { .. }) => {}
        other => panic!("{other:?}"),
    }
    // An empty store has nothing to replay.
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = Store::open(dir.path()).expect("open");
    match replay(&empty, &reverse(), b"", &ReplayOptions::default()) {
        Err(Error::InvalidQuery { reason }) => {
            assert!(reason.contains("record or import"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// A candidate that traps on every cart ask: each of its answers falls back to the built-in
/// ranker and is counted, and its figures are then the built-in ranker's.
#[test]
fn a_faulting_candidate_is_counted_and_ranked_by_the_builtin() {
    let events = events();
    let (_d, store) = store_with(&events);
    let trap = Wat {
        hostile: "(unreachable)",
        ..Wat::default()
    }
    .text()
    .into_bytes();
    let r = replay(
        &store,
        &trap,
        b"",
        &ReplayOptions {
            scenario: "cart".into(),
            split: Split::At(CUT),
            ..ReplayOptions::default()
        },
    )
    .expect("replay");
    assert_eq!(r.candidate.fallbacks, r.users as u64, "{r:?}");
    assert_eq!(r.current.fallbacks, 0);
    assert_eq!(r.difference.recall.value, 0.0);
    assert_eq!(r.difference.changed, 0.0);
    // The store's own registry never saw the candidate.
    assert!(store.plugins().list().is_empty());
}

/// Writes go on while a replay reads, and the replay answers.
#[test]
fn writes_flow_while_a_replay_runs() {
    let events = events();
    let (_d, store) = store_with(&events);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for n in 0..200u64 {
                store
                    .record_events(&[Event::view(format!("late{n}"), "i000", 200_000 + n)])
                    .expect("write during replay");
            }
        });
        let r = replay(&store, &reverse(), b"", &opts(Split::At(CUT))).expect("replay");
        assert!(r.users > 0);
        writer.join().expect("writer");
    });
}

/// `plugin.replay` on a store the admin socket serves: the module path is read by the server,
/// and the answer is the library's report as JSON.
#[cfg(feature = "admin")]
#[test]
fn the_admin_socket_replays_a_module_file() {
    use recostore::admin::protocol::Code;
    use recostore::admin::{AdminClient, AdminServer};
    use serde_json::json;

    let events = events();
    let (dir, store) = store_with(&events);
    let sock = dir.path().join("admin.sock");
    let _server = AdminServer::start(&store, &sock).expect("serve");
    let module = dir.path().join("reverse.wat");
    std::fs::write(&module, reverse()).expect("write module");
    let mut c = AdminClient::connect(&sock, std::time::Duration::from_secs(60)).expect("connect");
    let r = c
        .call(
            "plugin.replay",
            json!({"path": module, "since": CUT, "k": 5}),
        )
        .expect("response");
    assert!(r.ok, "{:?}", r.error);
    let v = r.result.expect("result");
    let local = replay(
        &store,
        &reverse(),
        b"",
        &ReplayOptions {
            k: 5,
            ..opts(Split::At(CUT))
        },
    )
    .expect("replay");
    // serde_json parses floats to within an ulp (without its `float_roundtrip` feature).
    let near = |got: &serde_json::Value, want: f64| {
        let got = got.as_f64().expect("a number");
        assert!((got - want).abs() < 1e-12, "{got} against {want}");
    };
    near(&v["candidate"]["recall"], local.candidate.recall);
    near(&v["current"]["ndcg"], local.current.ndcg);
    near(
        &v["difference"]["recall"]["low"],
        local.difference.recall.low,
    );
    near(&v["difference"]["coverage"], local.difference.coverage);
    assert_eq!(v["users"], json!(local.users));

    for (args, code) in [
        (
            json!({"path": module, "since": CUT, "last_secs": 60}),
            Code::BadArgs,
        ),
        (json!({"since": CUT}), Code::BadArgs),
        (json!({"path": module, "k": "ten"}), Code::BadArgs),
        (json!({"path": "/dev/zero"}), Code::BadArgs),
        (json!({"path": module, "against": "nope"}), Code::NotFound),
    ] {
        let r = c.call("plugin.replay", args.clone()).expect("response");
        assert!(!r.ok, "{args}");
        assert_eq!(r.error.expect("error").code, code, "{args}");
    }
}

/// `recostore plugin replay FILE --dir D --json` prints the three-part object; a bad
/// duration is refused by the argument parser with the accepted forms.
#[cfg(feature = "cli")]
#[test]
fn the_cli_prints_the_report() {
    let events = events();
    let (dir, store) = store_with(&events);
    drop(store);
    let module = dir.path().join("reverse.wat");
    std::fs::write(&module, reverse()).expect("write module");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recostore"))
            .args(["plugin", "replay"])
            .arg(&module)
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run recostore")
    };
    let out = run(&["--since", &CUT.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for side in ["candidate", "current"] {
        for f in ["recall", "ndcg", "coverage"] {
            assert!(v[side][f].is_number(), "{side}.{f} in {v}");
        }
    }
    assert!(v["difference"]["recall"]["low"].is_number(), "{v}");
    assert!(v["difference"]["changed"].is_number(), "{v}");

    // The table: each figure once, with the interval's verdict.
    let out = run(&["--since", &CUT.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "difference recall",
        "difference ndcg",
        "difference coverage",
        "changes",
    ] {
        assert_eq!(text.matches(line).count(), 1, "{line} once in\n{text}");
    }
    assert!(text.contains(": candidate worse"), "{text}");

    let out = run(&["--last", "3 weeks"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("90d, 12h, 30m"), "{err}");
    let out = run(&["--since", "1", "--last", "1d"]);
    assert!(!out.status.success(), "--since and --last together");
}
