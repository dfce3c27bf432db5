//! The library against a plain in-memory model of the same operations, in the style of
//! redb's fuzzer: random upserts, deletes, events, user deletes, rebuilds, saves of the
//! delta, flushes, reclaims of sled's space, prunes of the event log and reopens; after each, every record and every
//! user's logged event times equal the model's (and after a prune, the deep check passes).
#![no_main]
use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use recostore::{Config, Event, Item, Store};

#[derive(Arbitrary, Debug)]
enum Op {
    Upsert {
        item: u8,
        tags: Vec<(u8, u8)>,
        price: u16,
        /// Through `bulk_load_items` (chunks, tombstones, its own segment) instead.
        bulk: bool,
    },
    Delete {
        item: u8,
    },
    Events {
        events: Vec<(u8, u8, bool, u16)>,
    },
    DeleteUser {
        user: u8,
    },
    Rebuild,
    /// Save the delta to its file; the next reopen reads it back before the dirty log.
    SaveDelta,
    Flush,
    Reopen,
    Reclaim,
    Prune {
        keep: u16,
    },
}

#[derive(Default)]
struct Model {
    /// Item id -> tags sorted by name.
    items: BTreeMap<String, Vec<(String, f32)>>,
    /// User id -> times of the events in their log, sorted.
    events: BTreeMap<String, Vec<u64>>,
    /// The newest event time ever recorded: the store's clock.
    latest: u64,
}

fn item(n: u8) -> String {
    format!("i{}", n % 12)
}

fn user(n: u8) -> String {
    format!("u{}", n % 6)
}

fn open(dir: &std::path::Path) -> Store {
    // Small thresholds, so rebuilds, checkpoints and the journal all happen.
    let cfg = Config::default()
        .rebuild_threshold(Some(7))
        // Most background upkeep saves the delta instead of folding it (12 items at most).
        .fold_fraction(0.9)
        .checkpoint_events(5);
    Store::open_with(dir, cfg).expect("the store opens")
}

fn check(store: &Store, model: &Model) {
    for n in 0..12u8 {
        let id = item(n);
        let got = store.get_item(&id).map(|i| {
            let mut t = i.tags;
            t.sort_by(|a, b| a.0.cmp(&b.0));
            t
        });
        assert_eq!(got.as_ref(), model.items.get(&id), "item {id}");
    }
    assert_eq!(store.stats().items, model.items.len());
    for n in 0..6u8 {
        let id = user(n);
        let got: Vec<u64> = store
            .user_events(&id)
            .map(|e| e.iter().map(|e| e.ts).collect())
            .unwrap_or_default();
        assert_eq!(
            got,
            model.events.get(&id).cloned().unwrap_or_default(),
            "user {id}"
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = tempfile::tempdir().expect("scratch directory");
    let mut store = open(dir.path());
    let mut model = Model::default();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Upsert {
                item: n,
                tags,
                price,
                bulk,
            } => {
                let mut by_name: BTreeMap<String, f32> = BTreeMap::new();
                let mut dup = false;
                for (t, w) in tags.iter().take(6) {
                    let name = format!("t{}", t % 8);
                    dup |= by_name.insert(name, f32::from(*w) / 16.0).is_some();
                }
                let it = Item::new(
                    item(n),
                    by_name
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect::<Vec<_>>(),
                )
                .price(f32::from(price) / 100.0);
                let tags_in = tags
                    .iter()
                    .take(6)
                    .map(|(t, w)| (format!("t{}", t % 8), f32::from(*w) / 16.0))
                    .collect::<Vec<_>>();
                let raw = Item {
                    tags: tags_in,
                    ..it
                };
                let r = if bulk {
                    store.bulk_load_items(std::slice::from_ref(&raw)).map(drop)
                } else {
                    store.upsert_items(std::slice::from_ref(&raw))
                };
                if dup {
                    let kept: Vec<_> = by_name.into_iter().filter(|(_, w)| *w > 0.0).collect();
                    let _ = kept;
                    assert!(r.is_err(), "a repeated tag name was accepted");
                } else {
                    r.expect("a valid item is stored");
                    let kept: Vec<_> = by_name.into_iter().filter(|(_, w)| *w > 0.0).collect();
                    model.items.insert(item(n), kept);
                }
            }
            Op::Delete { item: n } => {
                let existed = store.delete_item(&item(n)).expect("delete");
                assert_eq!(existed, model.items.remove(&item(n)).is_some());
            }
            Op::Events { events } => {
                let batch: Vec<Event> = events
                    .iter()
                    .take(20)
                    .map(|&(u, i, buy, ts)| {
                        if buy {
                            Event::purchase(user(u), item(i), 1, 1.0, u64::from(ts))
                                .session(format!("s{}", ts % 4))
                        } else {
                            Event::view(user(u), item(i), u64::from(ts))
                        }
                    })
                    .collect();
                let valid = batch
                    .iter()
                    .all(|e| e.item.as_ref().is_some_and(|i| model.items.contains_key(i)));
                let r = store.record_events(&batch);
                if valid {
                    r.expect("events on existing items are recorded");
                    for e in &batch {
                        let times = model.events.entry(e.user.clone()).or_default();
                        times.push(e.ts);
                        times.sort_unstable();
                        model.latest = model.latest.max(e.ts);
                    }
                } else {
                    assert!(r.is_err(), "an event on a missing item was accepted");
                }
            }
            Op::DeleteUser { user: n } => {
                let existed = store.delete_user(&user(n)).expect("delete user");
                let had = model.events.remove(&user(n)).is_some();
                assert_eq!(existed, had, "user {}", user(n));
            }
            Op::Rebuild => {
                store.rebuild().expect("rebuild");
            }
            Op::SaveDelta => {
                store.save_delta().expect("save the delta");
            }
            Op::Flush => store.flush().expect("flush"),
            Op::Reclaim => {
                let r = store.reclaim_space().expect("reclaim");
                assert!(r.live_bytes <= r.bytes_after, "{r:?}");
            }
            Op::Prune { keep } => {
                // A checkpoint first, so no batch is left in the journal, where pruning
                // leaves it.
                store.checkpoint().expect("checkpoint");
                let r = store.prune_event_log(u64::from(keep)).expect("prune");
                assert_eq!(r.journaled_chunks, 0, "{r:?}");
                let horizon = model.latest.saturating_sub(u64::from(keep));
                assert_eq!(r.horizon, horizon);
                let mut taken = 0;
                for times in model.events.values_mut() {
                    let before = times.len();
                    times.retain(|&t| t >= horizon);
                    taken += before - times.len();
                }
                assert_eq!(r.events, taken as u64, "{r:?}");
                let v = store.verify_deep().expect("verify runs");
                assert!(v.healthy(), "{:?}", v.problems);
            }
            Op::Reopen => {
                drop(store);
                store = open(dir.path());
            }
        }
        check(&store, &model);
    }
});
