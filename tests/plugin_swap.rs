//! Hot swap under load: queries never fail, each answer is ranked wholly by one version, and
//! old versions are freed once the calls using them return.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use plugin_support::{relaxed, shop, Wat};
use recostore::{Ask, Scenario};

#[test]
fn swapping_100_times_under_four_query_threads() {
    let (_d, store) = shop(relaxed());
    let up = Wat::default().text();
    let down = Wat {
        sign: -1.0,
        ..Wat::default()
    }
    .text();
    let ask = Ask::new(Scenario::Trending).k(10).strategy("order");
    // The two answers, one per version: most popular first, and least popular first.
    store.plugins().load("order", up.as_bytes()).expect("v1");
    let by_up: Vec<String> = store
        .recommend(&ask)
        .expect("answer")
        .into_iter()
        .map(|r| r.id)
        .collect();
    store.plugins().load("order", down.as_bytes()).expect("v2");
    let by_down: Vec<String> = store
        .recommend(&ask)
        .expect("answer")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_ne!(by_up, by_down);

    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let served = store.serve(&ask).expect("zero queries fail");
                    assert!(
                        served.ranked_by.fallback.is_none(),
                        "{:?}",
                        served.ranked_by
                    );
                    let version = served.ranked_by.version.expect("a plugin ranked it");
                    let got: Vec<String> = served.items.into_iter().map(|r| r.id).collect();
                    // Odd versions were loaded from `up`, even ones from `down`.
                    let want = if version % 2 == 1 { &by_up } else { &by_down };
                    assert_eq!(&got, want, "answer of version {version} mixes versions");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for swap in 0..100 {
            let wasm = if swap % 2 == 0 { &up } else { &down };
            store
                .plugins()
                .swap("order", wasm.as_bytes())
                .expect("swap");
            // Let the readers answer a few queries on this version before the next swap, so
            // swaps really land between and during their calls.
            let seen = answered.load(Ordering::Relaxed);
            while answered.load(Ordering::Relaxed) < seen + 4 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(answered.load(Ordering::Relaxed) >= 400);
    let info = store.plugins().info("order").expect("loaded");
    assert_eq!(info.version, 102);
    assert_eq!(info.faults.total(), 0);
    assert_eq!(
        store.plugins().live_versions(),
        2,
        "only the current and the previous version are still alive"
    );
    store.plugins().unload("order").expect("unload");
    assert_eq!(store.plugins().live_versions(), 0, "unloading frees both");
}

#[test]
fn rollback_restores_the_previous_version_and_rolls_forward() {
    let (_d, store) = shop(relaxed());
    let p = store.plugins();
    p.load("r", Wat::default().text().as_bytes()).expect("v1");
    assert!(p.rollback("r").is_err(), "nothing to roll back to yet");
    p.swap(
        "r",
        Wat {
            sign: -1.0,
            ..Wat::default()
        }
        .text()
        .as_bytes(),
    )
    .expect("v2");
    let ask = Ask::new(Scenario::Trending).k(3).strategy("r");
    assert_eq!(
        store.serve(&ask).expect("answer").ranked_by.version,
        Some(2)
    );
    let info = p.rollback("r").expect("rollback");
    assert_eq!((info.version, info.previous), (1, Some(2)));
    assert_eq!(
        store.serve(&ask).expect("answer").ranked_by.version,
        Some(1)
    );
    let info = p.rollback("r").expect("roll forward");
    assert_eq!((info.version, info.previous), (2, Some(1)));
    assert!(
        p.swap("typo", b"").is_err(),
        "swap only replaces a loaded plugin"
    );
}
