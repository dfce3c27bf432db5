//! Recovery of the behaviour state from the event journal.
//!
//! Event batches write only their log chunks and a journal entry; the state they change is
//! written at checkpoints (every `checkpoint_events` events, on item upserts and deletes, on
//! close). A child process plays a mixed history (events, an item upsert, a user deletion,
//! more events), flushes, says so, and is SIGKILLed with the last batches only journalled. On
//! reopen the journal is replayed: the state must equal, bit for bit, that of a store that
//! played the same history checkpointing every batch and closed cleanly.

use std::time::Duration;

mod common;

use recostore::internals::Relation;
use recostore::{Config, Durability, Event, Item, Store};

const USERS: u64 = 12;
const ITEMS: u64 = 30;
const PER_BATCH: u64 = 6;

fn item(i: u64, variant: u64) -> Item {
    Item::new(
        format!("it-{i}"),
        [
            (format!("colour:{}", (i + variant) % 5), 1.0),
            (format!("brand:{}", i % 4), 0.5),
        ],
    )
    .category(format!("cat-{}", i % 3))
    .price(3.0 + (i * 7 % 40) as f32)
}

/// Batch `n`: a mix of every interest kind and impressions, sessions spanning batches,
/// out-of-order times.
fn batch(n: u64) -> Vec<Event> {
    (0..PER_BATCH)
        .map(|i| {
            let user = format!("u{}", (n * 5 + i) % USERS);
            let it = format!("it-{}", (n * 3 + i * 7) % ITEMS);
            let ts = 1_000_000 + n * 600 + (i * 37) % 200;
            let e = match (n + i) % 5 {
                0 => Event::purchase(user, it, 1 + (i % 2) as u32, 9.5, ts),
                1 => Event::cart(user, it, ts),
                2 => Event::rating(user, it, 1.0 + (i % 5) as f32, ts),
                // What the user was shown: the exposure memory is replayed too.
                3 => {
                    let next = format!("it-{}", (n * 3 + i * 7 + 1) % ITEMS);
                    Event::impression(user, "home", "builtin", vec![it, next], ts)
                }
                _ => Event::view(user, it, ts),
            };
            e.session(format!("s{}", n / 2))
        })
        .collect()
}

/// The history both stores play.
fn play(store: &Store) {
    let items: Vec<Item> = (0..ITEMS).map(|i| item(i, 0)).collect();
    store.upsert_items(&items).expect("items");
    for n in 0..40 {
        store.record_events(&batch(n)).expect("events");
    }
    assert!(store.delete_user("u4").expect("delete"));
    // 20 batches of 6 with a checkpoint every 100 events: one count-triggered checkpoint after
    // the 17th; the last 3 batches (which touch it-5) are journalled when the item changes.
    for n in 40..60 {
        store.record_events(&batch(n)).expect("events");
    }
    store.upsert_item(&item(5, 1)).expect("changed item");
    // Only in the journal when the child is killed.
    for n in 60..63 {
        store.record_events(&batch(n)).expect("events");
    }
}

fn config(checkpoint_events: usize) -> Config {
    Config::default()
        .durability(Durability::GroupCommit { ms: 10_000 })
        .checkpoint_events(checkpoint_events)
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`.
#[test]
#[ignore = "entry point of the child process of `journal_replay_restores_the_exact_state`"]
fn child_player() {
    let Ok(dir) = std::env::var("RECOSTORE_CRASH_DIR") else {
        return;
    };
    let store = Store::open_with(&dir, config(100)).expect("child opens store");
    play(&store);
    store.flush().expect("flush");
    println!("played");
    // Wait to be killed: dropping the store would checkpoint.
    std::thread::sleep(Duration::from_secs(600));
}

/// Everything the behaviour state holds: items and baskets by dense id, users by name.
///
/// Users by name, because the dense id of a user re-created after `delete_user` depends on
/// timing: while the background rebuild that the deletion starts is still running, the old
/// segment still maps the name to its old (now empty) id and the user gets that id back;
/// after it, the name is gone and the user gets a new one. Both are the same state.
fn state(store: &Store) -> String {
    let snap = store.snapshot();
    let act = recostore::internals::activity(&snap);
    let name = |u: u32| snap.user_name(u).unwrap_or_else(|| format!("#{u}"));
    let mut users: Vec<_> = act
        .users()
        .map(|(id, u)| {
            let shown: Vec<(u32, u64)> = act
                .exposure(id)
                .map(|e| e.shows().collect())
                .unwrap_or_default();
            format!("{}: {u:?} shown {shown:?}", name(id))
        })
        .collect();
    users.sort();
    let mut items: Vec<_> = act.items().map(|(id, s)| format!("{id}: {s:?}")).collect();
    items.sort();
    let lists: Vec<_> = [Relation::Bought, Relation::Viewed]
        .into_iter()
        .flat_map(|r| {
            let b = act.baskets(r);
            (b.first()..b.end()).map(move |id| {
                let owner = b.owner(id).map(name);
                format!("{r:?} {id} {owner:?}: {:?}", b.basket(id))
            })
        })
        .collect();
    let logs: Vec<_> = (0..USERS)
        .map(|u| format!("u{u}: {:?}", store.user_events(&format!("u{u}")).ok()))
        .collect();
    format!(
        "{:?}\n{}\n{}\n{}\n{}",
        act.totals(),
        users.join("\n"),
        items.join("\n"),
        lists.join("\n"),
        logs.join("\n")
    )
}

#[test]
fn journal_replay_restores_the_exact_state() {
    let crashed = tempfile::tempdir().unwrap();
    let envs = [("RECOSTORE_CRASH_DIR", crashed.path().display().to_string())];
    assert!(
        common::run_child_until("child_player", &envs, "played", Duration::from_secs(120)),
        "the child did not finish its history"
    );

    let clean = tempfile::tempdir().unwrap();
    {
        let reference = Store::open_with(clean.path(), config(0)).expect("reference");
        play(&reference);
    }
    let reference = Store::open(clean.path()).expect("reopen reference");
    let want = state(&reference);
    assert!(want.contains("shown [("), "the history shows users items");

    let recovered = Store::open_with(crashed.path(), config(100)).expect("reopen after SIGKILL");
    assert_eq!(state(&recovered), want, "replayed state differs");
    drop(recovered);
    // The replay checkpointed: a second open reads the same state without a journal.
    let again = Store::open_with(crashed.path(), config(100)).expect("second reopen");
    assert_eq!(
        state(&again),
        want,
        "state after the replay's checkpoint differs"
    );

    // Sequence numbers went on where they stopped: new events extend both logs alike.
    let more = batch(63);
    again.record_events(&more).expect("events after recovery");
    reference
        .record_events(&more)
        .expect("events on the reference");
    assert_eq!(
        state(&again),
        state(&reference),
        "events after recovery diverge"
    );
}
