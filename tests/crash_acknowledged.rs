//! Crash consistency: a child process writes and prints each acknowledged id; we SIGKILL it at a
//! random moment, reopen the store, and every acknowledged record must be there and intact.
//!
//! The child is this same test binary, re-run with `--ignored --exact child_writer`, so the test
//! needs no extra binary. Background rebuilds run in the child (tiny threshold), so kills also
//! land in the middle of segment publication.

use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Config, Durability, Item, Store};

fn record(n: u64) -> Item {
    Item {
        id: format!("it-{n}"),
        tags: vec![
            (format!("n:{n}"), 1.0),
            ("shared".into(), 0.5 + (n % 7) as f32),
        ],
        title: format!("title-{n}"),
        price: (n % 1000) as f32,
        ..Item::default()
    }
}

fn intact(store: &Store, n: u64) -> Result<(), String> {
    let got = store
        .get_item(&format!("it-{n}"))
        .ok_or_else(|| format!("it-{n} missing"))?;
    let mut want = record(n);
    want.tags.sort_by(|a, b| a.0.cmp(&b.0));
    if got != want {
        return Err(format!("it-{n} damaged: {got:?} != {want:?}"));
    }
    Ok(())
}

/// A kill during a rebuild can leave a half-written temporary or a superseded generation
/// behind; once the store is open again, `segments/` must hold only the live generation's
/// segment (and its neighbour lists and delta file, if any).
fn no_leaked_segment_files(dir: &std::path::Path, generation: u64) -> Result<(), String> {
    let keep = [
        format!("{generation:020}.seg"),
        format!("{generation:020}.nbr"),
        format!("{generation:020}.dlt"),
    ];
    let mut segments = 0;
    for e in std::fs::read_dir(dir.join("segments")).map_err(|e| e.to_string())? {
        let name = e.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy().into_owned();
        if !keep.contains(&name) {
            return Err(format!(
                "segments/{name} leaked (live generation {generation})"
            ));
        }
        segments += usize::from(name.ends_with(".seg"));
    }
    if generation > 0 && segments != 1 {
        return Err(format!("generation {generation}'s segment file is missing"));
    }
    Ok(())
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`.
#[test]
#[ignore = "entry point of the child process of `acknowledged_writes_survive_sigkill`"]
fn child_writer() {
    let Some((dir, start)) = common::child_env() else {
        return;
    };
    let immediate = std::env::var("RECOSTORE_CRASH_MODE").as_deref() == Ok("immediate");
    let durability = if immediate {
        Durability::Immediate
    } else {
        Durability::GroupCommit { ms: 50 }
    };
    // Rebuilds, saves of the delta and flushes of the delta's index (runs built and merged in
    // memory) run in the background while the writes go on, so the kills land during each.
    let cfg = Config::default()
        .durability(durability)
        .rebuild_threshold(Some(400))
        .delta_index_rows(16);
    let store = Store::open_with(&dir, cfg).expect("child opens store");
    let mut n = start;
    let mut calls = 0u64;
    loop {
        // Saves of the delta to its file land between the writes too (the background upkeep
        // saves instead of folding once the catalogue is four times the delta).
        calls += 1;
        if calls.is_multiple_of(8) {
            store.save_delta().expect("save the delta");
        }
        if immediate {
            // Each returned Ok is durable on its own.
            store.upsert_item(&record(n)).expect("write");
            println!("ack {n}");
            n += 1;
        } else {
            // Group commit: a batch is acknowledged once flush() returns after it.
            let batch: Vec<Item> = (n..n + 25).map(record).collect();
            store.upsert_items(&batch).expect("write");
            store.flush().expect("flush");
            for i in n..n + 25 {
                println!("ack {i}");
            }
            n += 25;
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked_total = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline || round < 4 {
        let mode = if round.is_multiple_of(2) {
            "group"
        } else {
            "immediate"
        };
        let wait = Duration::from_millis(rng.gen_range(150..900));
        let envs = [
            ("RECOSTORE_CRASH_DIR", dir.path().display().to_string()),
            ("RECOSTORE_CRASH_START", (round * 10_000_000).to_string()),
            ("RECOSTORE_CRASH_MODE", mode.to_string()),
        ];
        let acked = common::run_child_and_kill("child_writer", &envs, wait);
        acked_total.extend(acked);
        let store = Store::open(dir.path()).expect("reopen after SIGKILL");
        for &n in &acked_total {
            if let Err(e) = intact(&store, n) {
                panic!("round {round} ({mode}, killed after {wait:?}): {e}");
            }
        }
        if let Err(e) = no_leaked_segment_files(dir.path(), store.stats().generation) {
            panic!("round {round} ({mode}, killed after {wait:?}): {e}");
        }
        drop(store);
        round += 1;
    }
    assert!(
        acked_total.len() > 100,
        "children acknowledged too little to prove anything: {}",
        acked_total.len()
    );
    eprintln!(
        "{round} kills, {} acknowledged records all intact",
        acked_total.len()
    );
}
