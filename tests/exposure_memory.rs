//! Exposure memory: what each user was shown, and the asks that leave it out (not shown within
//! T, at most N shows in T) or demote it. The oracle is this file's own list of every show,
//! sent as impression events, and each answer without the option, filtered here.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use recostore::{Ask, Config, Error, Event, Item, Reason, Recording, Scenario, Store};

const DAY: u64 = 86_400;

/// A shop of `n` items, each viewed a different number of times (so trending has a strict
/// order), with the clock at `now`.
fn shop(dir: &std::path::Path, cfg: Config, n: usize, now: u64) -> Store {
    let store = Store::open_with(dir, cfg).unwrap();
    let items: Vec<Item> = (0..n)
        .map(|i| Item::new(format!("i{i:03}"), [(format!("t{}", i % 7), 1.0)]))
        .collect();
    store.upsert_items(&items).unwrap();
    let mut views = Vec::new();
    for i in 0..n {
        for v in 0..(n - i) {
            views.push(Event::view(format!("viewer{v}"), format!("i{i:03}"), now));
        }
    }
    store.record_events(&views).unwrap();
    store
}

fn ids(recs: &[recostore::Recommendation]) -> Vec<String> {
    recs.iter().map(|r| r.id.clone()).collect()
}

/// SplitMix64, for the random schedule (its own copy: the store's is not the oracle's).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random impressions (duplicates within a list, late arrivals, several users), then asks
/// with every exposure option at random times: each answer is the answer without the
/// options, less what this file's own list of shows says to leave out, and demoted by the
/// f64 factor computed here.
#[test]
fn exposure_options_match_a_model_of_every_show() {
    let now = 1_700_000_000;
    let n = 40;
    let half_life = 3_600;
    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default()
            .exposure_memory(10_000)
            .exposure_half_life_secs(half_life);
        let store = shop(dir.path(), cfg, n, now);
        let mut rng = Rng(seed);
        let users = ["ann", "bob", "cy"];
        // Every show: user → (item, ts), as sent.
        let mut shows: HashMap<&str, Vec<(String, u64)>> = HashMap::new();
        let mut events = Vec::new();
        for _ in 0..60 {
            let user = users[rng.below(3) as usize];
            let ts = now - rng.below(3 * DAY);
            let len = 1 + rng.below(6) as usize;
            let items: Vec<String> = (0..len)
                .map(|_| format!("i{:03}", rng.below(n as u64)))
                .collect();
            let mut distinct = items.clone();
            distinct.sort();
            distinct.dedup();
            for i in distinct {
                shows.entry(user).or_default().push((i, ts));
            }
            events.push(Event::impression(user, "home", "builtin", items, ts));
        }
        // In several batches, so some users' states come from more than one.
        for chunk in events.chunks(7) {
            store.record_events(chunk).unwrap();
        }
        for round in 0..30 {
            let user = users[rng.below(3) as usize];
            let at = now - rng.below(DAY);
            let window = 1 + rng.below(2 * DAY);
            let times = 1 + rng.below(3) as u32;
            let base = Ask::new(Scenario::Trending).user(user).k(n).at(at);
            let plain = store.recommend(&base).unwrap();
            assert_eq!(plain.len(), n, "trending ranks every viewed item");
            let mine = shows.get(user).cloned().unwrap_or_default();
            let recent = |w: u64| -> HashMap<String, u32> {
                let mut c = HashMap::new();
                for (i, ts) in &mine {
                    if at.saturating_sub(*ts) < w {
                        *c.entry(i.clone()).or_insert(0) += 1;
                    }
                }
                c
            };
            let k = 1 + rng.below(n as u64) as usize;
            // Not shown within the window.
            let shown = recent(window);
            let want: Vec<String> = ids(&plain)
                .into_iter()
                .filter(|i| !shown.contains_key(i))
                .take(k)
                .collect();
            let got = store
                .recommend(
                    &base
                        .clone()
                        .k(k)
                        .not_shown_within(Duration::from_secs(window)),
                )
                .unwrap();
            assert_eq!(
                ids(&got),
                want,
                "seed {seed} round {round}: not shown within {window}"
            );
            // At most `times` shows in the window.
            let want: Vec<String> = ids(&plain)
                .into_iter()
                .filter(|i| shown.get(i).is_none_or(|&c| c < times))
                .take(k)
                .collect();
            let got = store
                .recommend(&base.clone().k(k).cap(times, Duration::from_secs(window)))
                .unwrap();
            assert_eq!(
                ids(&got),
                want,
                "seed {seed} round {round}: cap {times}/{window}"
            );
            // Demoted: score / (1 + Σ 2^(−age/half-life)), in f64 here.
            let mut want: Vec<(String, f64, u32)> = plain
                .iter()
                .map(|r| {
                    let mine: Vec<u64> = mine
                        .iter()
                        .filter(|(i, _)| *i == r.id)
                        .map(|s| s.1)
                        .collect();
                    let weight: f64 = mine
                        .iter()
                        .map(|&ts| 0.5f64.powf(at.saturating_sub(ts) as f64 / half_life as f64))
                        .sum();
                    // A reason only where the factor demotes at all in f32: shows decayed to
                    // nothing (days at a 1-hour half-life) leave the score as it was.
                    let demotes = ((1.0 / (1.0 + weight)) as f32) < 1.0;
                    (
                        r.id.clone(),
                        f64::from(r.score) / (1.0 + weight),
                        if demotes { mine.len() as u32 } else { 0 },
                    )
                })
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1));
            let got = store.recommend(&base.clone().demote_shown()).unwrap();
            assert_eq!(got.len(), n);
            for (pos, (r, (id, score, times))) in got.iter().zip(&want).enumerate() {
                let close = (f64::from(r.score) - score).abs() <= 1e-4 * score.max(1e-3);
                if r.id != *id {
                    // Only a near-tie may swap places.
                    let theirs = want.iter().find(|w| w.0 == r.id).unwrap().1;
                    assert!(
                        (theirs - score).abs() <= 1e-4 * score.max(1e-3),
                        "seed {seed} round {round} position {pos}: {} ({}) where {id} ({score}) belongs",
                        r.id,
                        r.score
                    );
                    continue;
                }
                assert!(close, "{id}: score {} against {score}", r.score);
                let note = r.reasons.iter().find_map(|x| match x {
                    Reason::ShownBefore { times, .. } => Some(*times),
                    _ => None,
                });
                assert_eq!(
                    note,
                    (*times > 0).then_some(*times),
                    "{id}: the reason tells the shows"
                );
            }
        }
    }
}

/// The memory keeps the newest shows only; a cap counts what is kept.
#[test]
fn the_memory_is_bounded_and_a_cap_beyond_it_is_refused() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default().exposure_memory(4), 10, now);
    // Six shows of one item, oldest first: four are kept.
    for t in 0..6 {
        store
            .record_event(&Event::impression(
                "ann",
                "home",
                "builtin",
                vec!["i000".into()],
                now - 600 + t,
            ))
            .unwrap();
    }
    let ask = Ask::new(Scenario::Trending).user("ann").k(3);
    let got = store
        .recommend(&ask.clone().cap(4, Duration::from_secs(DAY)))
        .unwrap();
    assert!(
        !ids(&got).contains(&"i000".to_string()),
        "four shows kept reach a cap of 4"
    );
    let got = store
        .recommend(&ask.clone().cap(4, Duration::from_secs(598)))
        .unwrap();
    assert_eq!(
        ids(&got)[0],
        "i000",
        "three of the shows kept are under 598 s old"
    );
    let err = store
        .recommend(&ask.clone().cap(5000, Duration::from_secs(DAY)))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidQuery { reason } if reason.contains("never be reached") && reason.contains("exposure_memory")),
        "{err}"
    );
    let demoted = store.recommend(&ask.clone().k(10).demote_shown()).unwrap();
    let times = demoted.iter().find(|r| r.id == "i000").and_then(|r| {
        r.reasons.iter().find_map(|x| match x {
            Reason::ShownBefore { times, .. } => Some(*times),
            _ => None,
        })
    });
    assert_eq!(times, Some(4), "the reason counts the shows remembered");
}

#[test]
fn bad_exposure_asks_are_refused_with_what_to_do() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 5, now);
    let ask = Ask::new(Scenario::Trending).user("ann");
    let refused = |a: Ask, needle: &str| {
        let e = store.recommend(&a).unwrap_err();
        assert!(matches!(e, Error::InvalidQuery { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    };
    refused(
        Ask::new(Scenario::Trending).not_shown_within(Duration::from_secs(60)),
        "set Ask::user",
    );
    refused(
        ask.clone().not_shown_within(Duration::from_millis(500)),
        "at least one second",
    );
    refused(
        ask.clone().cap(0, Duration::from_secs(60)),
        "at least one show",
    );
    refused(ask.clone().cap(1, Duration::ZERO), "at least one second");
    // Far in the future: an impression stamped there would move the store's clock and decay
    // every profile to nothing.
    refused(
        ask.clone().at(u64::MAX),
        "later than this machine's clock allows",
    );
    // The whole of time is a window like any other.
    let all = store
        .recommend(&ask.clone().not_shown_within(Duration::from_secs(u64::MAX)))
        .unwrap();
    assert_eq!(all.len(), 5, "nothing shown yet: nothing left out");
    let off = tempfile::tempdir().unwrap();
    let store = shop(off.path(), Config::default().exposure_memory(0), 5, now);
    let e = store.recommend(&ask.clone().demote_shown()).unwrap_err();
    assert!(e.to_string().contains("exposure_memory = 0"), "{e}");
    // JSON from the socket: the same fields, checked the same way.
    let e = Ask::from_json(serde_json::json!({"scenario": "trending", "cap": {"times": 2}}))
        .unwrap_err();
    assert!(e.to_string().contains("within_secs"), "{e}");
    let e = Ask::from_json(serde_json::json!({"scenario": "trending", "not_shown_within": 5}))
        .unwrap_err();
    assert!(e.to_string().contains("not_shown_within_secs"), "{e}");
}

/// Answers that name a user and a slot record their own impressions: refreshing the page
/// with "not shown within a day" walks down the list the first answer started, with no
/// repeat and no gap, and the log holds one impression per answer.
#[test]
fn served_answers_record_their_impressions() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 30, now);
    let long = store
        .recommend(&Ask::new(Scenario::Trending).user("ann").k(30))
        .unwrap();
    let ask = Ask::new(Scenario::Trending)
        .user("ann")
        .slot("home")
        .k(7)
        .not_shown_within(Duration::from_secs(DAY));
    let mut pages = Vec::new();
    for _ in 0..5 {
        let served = store.serve(&ask).unwrap();
        assert_eq!(served.impression, Some(Recording::Queued));
        store.flush_impressions();
        pages.extend(ids(&served.items));
    }
    assert_eq!(
        pages,
        ids(&long)[..30].to_vec(),
        "five pages of 7 walk the list of 30"
    );
    let logged: Vec<Vec<String>> = store
        .user_events("ann")
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            recostore::EventKind::Impression { slot, items, .. } if slot == "home" => Some(items),
            _ => None,
        })
        .collect();
    assert_eq!(
        logged.len(),
        5,
        "the fifth answer (2 items) is recorded too"
    );
    assert_eq!(logged.concat(), pages);
    let counts = store.stats().served_impressions;
    assert_eq!(
        (
            counts.queued,
            counts.recorded,
            counts.dropped,
            counts.failed
        ),
        (5, 5, 0, 0)
    );
    // Without a slot, or without a user, nothing is recorded.
    let served = store
        .serve(&Ask::new(Scenario::Trending).user("ann"))
        .unwrap();
    assert_eq!(served.impression, None);
    let served = store
        .serve(&Ask::new(Scenario::Trending).slot("home"))
        .unwrap();
    assert_eq!(served.impression, None);
    // Queued impressions are written by the last close, and the memory is back after open.
    let again = ask.clone().k(30).not_shown_within(Duration::from_secs(DAY));
    store
        .serve(&Ask::new(Scenario::Trending).user("bob").slot("home").k(3))
        .unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(
        store.recommend(&again).unwrap().is_empty(),
        "ann has seen everything"
    );
    let bob = store
        .recommend(
            &Ask::new(Scenario::Trending)
                .user("bob")
                .k(30)
                .not_shown_within(Duration::from_secs(DAY)),
        )
        .unwrap();
    assert_eq!(
        bob.len(),
        27,
        "bob's three shows, queued at close, were recorded"
    );
    // A user forgotten is forgotten with what they were shown. (Asked without a slot: an
    // answer from a slot would record a new visit.)
    assert!(store.delete_user("ann").unwrap());
    let mut unrecorded = again.clone();
    unrecorded.slot = None;
    assert_eq!(store.recommend(&unrecorded).unwrap().len(), 30);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.recommend(&unrecorded).unwrap().len(),
        30,
        "and stays forgotten after open"
    );
    assert!(store.get_user("ann").is_none());
}

/// Demotion re-ranks a deeper pool: when the first k were all shown, unshown items take
/// their places (the plain answer's next ones), and the shown ones fall behind them.
#[test]
fn demotion_lets_unshown_items_past_shown_ones() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 30, now);
    let plain = ids(&store
        .recommend(&Ask::new(Scenario::Trending).user("ann").k(30))
        .unwrap());
    store
        .record_event(&Event::impression(
            "ann",
            "home",
            "builtin",
            plain[..5].to_vec(),
            now,
        ))
        .unwrap();
    let got = ids(&store
        .recommend(&Ask::new(Scenario::Trending).user("ann").k(5).demote_shown())
        .unwrap());
    // Trending scores are view counts (30, 29, ...): halved, the first five score 15 down to
    // 13, so the next five (25 to 21) pass them.
    assert_eq!(got, plain[5..10].to_vec());
}

/// A user deleted while an answer for them was on its way: the impression queued from the
/// snapshot before the deletion is not written, so the user does not come back.
#[test]
fn a_deleted_user_is_not_brought_back_by_an_answer_served_before() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 10, now);
    store
        .record_event(&Event::impression(
            "ann",
            "home",
            "builtin",
            vec!["i001".into()],
            now,
        ))
        .unwrap();
    let before = store.view();
    assert!(store.delete_user("ann").unwrap());
    let ask = Ask::new(Scenario::Trending).user("ann").slot("home").k(3);
    assert_eq!(
        before.serve(&ask).unwrap().impression,
        Some(Recording::Queued)
    );
    store.flush_impressions();
    assert!(
        store.get_user("ann").is_none(),
        "the old answer's impression was not written"
    );
    // A visit after the deletion is a new visit.
    store.serve(&ask).unwrap();
    store.flush_impressions();
    assert!(store.get_user("ann").is_some());
}

/// Config::record_served_impressions off: the app's own impressions are the only ones.
#[test]
fn recording_can_be_left_to_the_app() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(
        dir.path(),
        Config::default().record_served_impressions(false),
        5,
        now,
    );
    let ask = Ask::new(Scenario::Trending).user("ann").slot("home").k(2);
    let served = store.serve(&ask).unwrap();
    assert_eq!(served.impression, None);
    store.flush_impressions();
    assert!(store.user_events("ann").is_err(), "no event, so no user");
}

/// Many threads asking and recording at once: every answer's impression is recorded once,
/// and none is lost or doubled.
#[test]
fn concurrent_answers_are_each_recorded_once() {
    let now = 1_700_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 20, now);
    let threads = 4;
    let per = 50;
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = &store;
            s.spawn(move || {
                for _ in 0..per {
                    let ask = Ask::new(Scenario::Trending)
                        .user(format!("u{t}"))
                        .slot("home")
                        .k(3);
                    assert_eq!(
                        store.serve(&ask).unwrap().impression,
                        Some(Recording::Queued)
                    );
                }
            });
        }
    });
    store.flush_impressions();
    let c = store.stats().served_impressions;
    assert_eq!((c.queued, c.recorded), (200, 200));
    for t in 0..threads {
        let n = store
            .user_events(&format!("u{t}"))
            .unwrap()
            .iter()
            .filter(|e| e.kind.name() == "impression")
            .count();
        assert_eq!(n, per);
    }
}

/// Online Retail: for 40 customers, five refreshes of the home page with "not shown within a
/// day" never repeat an item, and each page is the answer to the same ask with what the
/// earlier pages showed listed in the filter's `exclude_items` by this test (another path
/// through the store: the filter, not the exposure memory).
#[test]
fn retail_home_page_refreshes_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::retail::imported(dir.path(), Config::default());
    let users = common::retail::customers(&store, 97, 40);
    let mut shown_total = 0usize;
    for u in &users {
        let ask = Ask::new(Scenario::ForUser)
            .user(u.as_str())
            .slot("home")
            .k(10)
            .not_shown_within(Duration::from_secs(DAY));
        let mut seen = HashSet::new();
        let mut pages = Vec::new();
        for r in 0..5 {
            let filter = recostore::Filter {
                exclude_items: pages.clone(),
                ..Default::default()
            };
            let want = ids(&store
                .recommend(
                    &Ask::new(Scenario::ForUser)
                        .user(u.as_str())
                        .k(10)
                        .filter(filter),
                )
                .unwrap());
            let page = ids(&store.serve(&ask).unwrap().items);
            store.flush_impressions();
            assert_eq!(page, want, "{u}: page {r}");
            for i in &page {
                assert!(seen.insert(i.clone()), "{u}: {i} shown twice");
            }
            shown_total += page.len();
            pages.extend(page);
        }
    }
    let c = store.stats().served_impressions;
    assert_eq!((c.recorded, c.dropped, c.failed), (200, 0, 0));
    assert_eq!(shown_total, 2_000, "every page full");
}
