//! Ranking plugins against the same logic compiled natively, swap-to-serving time, and the
//! cost of epoch checks and fuel.
//!
//! Run: `cargo bench --bench plugins` (builds plugins/ for wasm32-unknown-unknown first).
//! Three parts, each with its baseline measured in the same run; medians of many calls:
//! * **Ranking**: the a9-match example at 100, 1,000 and 10,000 candidates through the
//!   store's call path (warm instance from the pool; input copied in, scores read back),
//!   against `A9Match::score` compiled natively into this binary. Host overhead is the
//!   difference; the target is ≤ 10 µs p50 at 1,000.
//!   Also a whole `trending` query ranked by the plugin (which gathers `rerank_depth`
//!   candidates and their features) against the built-in ranker (which gathers `k`).
//! * **Swap**: `Plugins::swap` of a module already compiled (cached by hash) until the first
//!   answer ranked by the new version, against the first load of a module never compiled.
//! * **Epoch and fuel**: the a9 module called directly through wasmtime at 10,000 candidates
//!   on four engines: no interruption, epoch, fuel, epoch + fuel; ratios against the first.
//!
//! * **Shadow**: the served p50 and p99 of a slot with no shadow variant and with one, in
//!   alternating rounds of one run while a writer records events; the target is that a
//!   shadow moves the served p99 by at most 5%.
//!
//! Figures go to `bench/RESULTS.md` by hand.

use std::time::{Duration, Instant};

#[path = "../tests/plugin_support/mod.rs"]
mod plugin_support;

use a9_match::A9Match;
use recostore::plugin::version::Input;
use recostore::plugin::{Context, Feature as HostFeature};
use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, PluginLimits, Store};
use recostore_plugin_sdk::{Candidates, Feature, Strategy};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// Deterministic feature columns for `n` candidates, in the a9 plugin's column order.
fn columns(n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let ids: Vec<u32> = (0..n as u32).collect();
    let f = |k: u32| -> Vec<f32> {
        ids.iter()
            .map(|&i| ((i.wrapping_mul(2_654_435_761) ^ k) % 1000) as f32 / 1000.0)
            .collect()
    };
    // Bit order: similarity, conversion_rate, review_count, rating, tag_match.
    let cols = vec![
        f(1),
        f(2).iter().map(|x| x * 0.1).collect(),
        f(3).iter().map(|x| x * 500.0).collect(),
        f(4).iter().map(|x| x * 5.0).collect(),
        f(5),
    ];
    (ids, cols)
}

fn ranking(dir: &std::path::Path) {
    let wasm = std::fs::read(dir.join("a9_match.wasm")).expect("a9_match.wasm");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(store_dir.path()).expect("open");
    store.plugins().load("a9", &wasm).expect("load");
    let v = store.plugins().current("a9").expect("current");
    let order: Vec<HostFeature> = v.features().iter().collect();
    assert_eq!(
        order,
        [
            HostFeature::Similarity,
            HostFeature::ConversionRate,
            HostFeature::ReviewCount,
            HostFeature::Rating,
            HostFeature::TagMatch
        ]
    );
    println!("## ranking: a9-match plugin vs the same code native (median µs per call)");
    println!("| candidates | native | plugin | host overhead | ratio |");
    println!("|---|---|---|---|---|");
    for n in [100usize, 1_000, 10_000] {
        let (ids, cols) = columns(n);
        let input = Input {
            context: Context::default(),
            ids: ids.clone(),
            columns: cols.clone(),
        };
        let native = A9Match::default();
        let feats = [
            Feature::Similarity,
            Feature::ConversionRate,
            Feature::ReviewCount,
            Feature::Rating,
            Feature::TagMatch,
        ];
        let pairs: Vec<(Feature, &[f32])> = feats
            .iter()
            .zip(&cols)
            .map(|(f, c)| (*f, c.as_slice()))
            .collect();
        let cands = Candidates::new(&ids, &pairs);
        let ctx = recostore_plugin_sdk::Context::default();
        let mut scores = vec![0f32; n];
        let reps = (2_000_000 / n).clamp(200, 20_000);
        let mut nat = Vec::with_capacity(reps);
        let mut plug = Vec::with_capacity(reps);
        let mut check = 0f32;
        for _ in 0..reps {
            let t = Instant::now();
            native.score(&ctx, &cands, &mut scores);
            nat.push(t.elapsed());
            check += std::hint::black_box(scores[n / 2]);
            let t = Instant::now();
            let out = v.run(&input).expect("plugin call");
            plug.push(t.elapsed());
            check -= out.scores[n / 2];
        }
        assert!(
            check.abs() < 1e-3 * reps as f32,
            "plugin and native disagree"
        );
        let (a, b) = (median(nat), median(plug));
        println!("| {n} | {a:.2} | {b:.2} | {:.2} | {:.1}× |", b - a, b / a);
    }
}

fn scenario_query(dir: &std::path::Path, depth: usize) {
    let wasm = std::fs::read(dir.join("a9_match.wasm")).expect("a9_match.wasm");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let limits = PluginLimits::default().rerank_depth(depth);
    let store =
        Store::open_with(store_dir.path(), Config::default().plugins(limits)).expect("open");
    fill(&store);
    store.plugins().load("a9", &wasm).expect("load");
    let builtin = Ask::new(Scenario::Trending).k(10).user("u1");
    let plugin = builtin.clone().strategy("a9");
    let n = store.serve(&plugin).expect("answer");
    assert!(n.ranked_by.fallback.is_none());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let t = Instant::now();
        store.recommend(&builtin).expect("answer");
        a.push(t.elapsed());
        let t = Instant::now();
        store.recommend(&plugin).expect("answer");
        b.push(t.elapsed());
    }
    let (a, b) = (median(a), median(b));
    println!("| {depth} | {a:.1} µs | {b:.1} µs | {:.1}× |", b / a);
}

fn swap(dir: &std::path::Path) {
    let a = std::fs::read(dir.join("a9_match.wasm")).expect("wasm");
    let b = std::fs::read(dir.join("spend_match.wasm")).expect("wasm");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(store_dir.path()).expect("open");
    store
        .upsert_items(&[Item::new("x", [("t", 1.0)]), Item::new("y", [("t", 1.0)])])
        .expect("items");
    store
        .record_events(&[Event::view("u", "x", 1), Event::view("u", "y", 2)])
        .expect("events");
    let ask = Ask::new(Scenario::Trending).k(2).strategy("p");
    // Cold: a fresh registry (fresh engine and cache) loading a module never compiled.
    let mut cold = Vec::new();
    for _ in 0..5 {
        let p = recostore::Plugins::new(PluginLimits::default());
        let t = Instant::now();
        p.load("p", &a).expect("load");
        cold.push(t.elapsed());
    }
    store.plugins().load("p", &a).expect("load");
    store.plugins().load("p", &b).expect("load");
    let mut warm = Vec::new();
    for i in 0..200 {
        let wasm = if i % 2 == 0 { &a } else { &b };
        let t = Instant::now();
        let info = store.plugins().swap("p", wasm).expect("swap");
        let served = store.serve(&ask).expect("answer");
        warm.push(t.elapsed());
        assert_eq!(served.ranked_by.version, Some(info.version));
    }
    let (c, w) = (median(cold), median(warm));
    println!("\n## swap to serving");
    println!("| first load (compile) | swap, precompiled, to first answer | ratio |");
    println!("|---|---|---|\n| {c:.0} µs | {w:.0} µs | {:.3}× |", w / c);
}

fn epoch_and_fuel(dir: &std::path::Path) {
    use wasmtime::{Config as WConfig, Engine, Linker, Module, Store as WStore};
    let wasm = std::fs::read(dir.join("a9_match.wasm")).expect("wasm");
    let n = 10_000usize;
    let (ids, cols) = columns(n);
    println!("\n## epoch and fuel at 10,000 candidates (a9-match, median µs per score call)");
    println!("| engine | µs | ratio to plain |\n|---|---|---|");
    let mut plain = 0.0;
    for (name, epoch, fuel) in [
        ("plain", false, false),
        ("epoch", true, false),
        ("fuel", false, true),
        ("epoch + fuel", true, true),
    ] {
        let mut cfg = WConfig::new();
        cfg.epoch_interruption(epoch).consume_fuel(fuel);
        let engine = Engine::new(&cfg).expect("engine");
        let module = Module::new(&engine, &wasm).expect("module");
        let mut linker: Linker<()> = Linker::new(&engine);
        linker
            .func_wrap("env", "log", |_: i32, _: i32, _: i32| {})
            .expect("log");
        let mut store = WStore::new(&engine, ());
        if epoch {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        if fuel {
            store.set_fuel(u64::MAX / 2).expect("fuel");
        }
        let inst = linker.instantiate(&mut store, &module).expect("instance");
        let input = inst
            .get_typed_func::<i32, i32>(&mut store, "recostore_input")
            .expect("input");
        let score = inst
            .get_typed_func::<i32, i32>(&mut store, "recostore_score")
            .expect("score");
        let mem = inst.get_memory(&mut store, "memory").expect("memory");
        let ptr = input.call(&mut store, n as i32).expect("input") as usize;
        let data = mem.data_mut(&mut store);
        let mut at = ptr + 32;
        for i in &ids {
            data[at..at + 4].copy_from_slice(&i.to_le_bytes());
            at += 4;
        }
        for c in &cols {
            for x in c {
                data[at..at + 4].copy_from_slice(&x.to_le_bytes());
                at += 4;
            }
        }
        let mut t = Vec::new();
        for _ in 0..300 {
            let s = Instant::now();
            score.call(&mut store, n as i32).expect("score");
            t.push(s.elapsed());
        }
        let m = median(t);
        if name == "plain" {
            plain = m;
        }
        println!("| {name} | {m:.1} | {:.2}× |", m / plain);
    }
}

fn main() {
    let dir = plugin_support::examples();
    // RECOSTORE_BENCH_ONLY=ranking|scenario|swap|fuel|shadow runs one part (for profiling).
    let only = std::env::var("RECOSTORE_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("ranking") {
        ranking(&dir);
    }
    if run("scenario") {
        scenario_queries(&dir);
    }
    if run("swap") {
        swap(&dir);
    }
    if run("fuel") {
        epoch_and_fuel(&dir);
    }
    if run("shadow") {
        shadow_cost(&dir);
    }
}

/// 10,000 items in 50 tags, 20,000 views and purchases by 500 users, folded into a segment:
/// the store the scenario and shadow parts query.
fn fill(store: &Store) {
    let items: Vec<Item> = (0..10_000)
        .map(|i| Item::new(format!("i{i}"), [(format!("t{}", i % 50), 1.0)]).price(10.0))
        .collect();
    store.upsert_items(&items).expect("items");
    let events: Vec<Event> = (0..20_000u64)
        .map(|e| {
            let item = format!("i{}", (e * 7919) % 1_000);
            if e % 5 == 0 {
                Event::purchase(format!("u{}", e % 500), item, 1, 10.0, 1_000 + e)
            } else {
                Event::view(format!("u{}", e % 500), item, 1_000 + e)
            }
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("rebuild");
}

/// Every shadow's (sampled, ranked or dropped, ranked) so far.
fn shadow_totals(store: &Store) -> (u64, u64, u64) {
    store
        .plugins()
        .variant_stats(None)
        .into_iter()
        .filter_map(|r| r.shadow)
        .fold((0, 0, 0), |t, s| {
            (t.0 + s.sampled, t.1 + s.calls + s.dropped, t.2 + s.calls)
        })
}

/// Percentile `p` of `v` (sorted in place), in µs.
fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    let at = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[at].as_secs_f64() * 1e6
}

/// The served p50 and p99 of slot `home` with no shadow, with a shadow sampling every answer
/// and with one sampling a tenth, in alternating rounds of the same run on one store, with
/// a writer recording events throughout (the state a shop is in).
fn shadow_cost(dir: &std::path::Path) {
    use recostore::plugin::Variant;
    use std::sync::atomic::{AtomicBool, Ordering};
    let a9 = std::fs::read(dir.join("a9_match.wasm")).expect("a9_match.wasm");
    let spend = std::fs::read(dir.join("spend_match.wasm")).expect("spend_match.wasm");
    let store_dir = tempfile::tempdir().expect("tempdir");
    // RECOSTORE_BENCH_SHADOW_CPU sets `PluginLimits::shadow_cpu` (default: the library's).
    let mut limits = PluginLimits::default();
    if let Some(cpu) = std::env::var("RECOSTORE_BENCH_SHADOW_CPU")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        limits.shadow_cpu = cpu;
    }
    let share = limits.shadow_cpu;
    let store =
        Store::open_with(store_dir.path(), Config::default().plugins(limits)).expect("open");
    fill(&store);
    store.plugins().load("a9", &a9).expect("load");
    store.plugins().load("spend", &spend).expect("load");
    // RECOSTORE_BENCH_THREADS query threads (default: one per core, a saturated machine);
    // RECOSTORE_BENCH_ROUNDS rounds of each phase (default 5).
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<usize>().ok());
    let threads = env("RECOSTORE_BENCH_THREADS")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rounds = env("RECOSTORE_BENCH_ROUNDS").unwrap_or(5).max(1);
    let secs: f64 = std::env::var("RECOSTORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let phases: [(&str, Vec<Variant>); 4] = [
        ("no shadow", vec![Variant::new("a9", 1)]),
        (
            "shadow, every answer",
            vec![Variant::new("a9", 1), Variant::shadow("spend", 1.0)],
        ),
        (
            "shadow, a tenth",
            vec![Variant::new("a9", 1), Variant::shadow("spend", 0.1)],
        ),
        // The first phase again: how far two rounds of the same thing differ here.
        ("no shadow again (control)", vec![Variant::new("a9", 1)]),
    ];
    let stop_writer = AtomicBool::new(false);
    let mut per_phase: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); 4];
    // Per phase: shadow answers sampled, and ranked while the phase ran.
    let mut ranked = [(0u64, 0u64); 4];
    std::thread::scope(|s| {
        // About 1,000 events a second while the queries run.
        s.spawn(|| {
            let mut ts = 100_000u64;
            while !stop_writer.load(Ordering::Relaxed) {
                let batch: Vec<Event> = (0..10)
                    .map(|_| {
                        ts += 1;
                        Event::view(format!("u{}", ts % 500), format!("i{}", ts % 2_000), ts)
                    })
                    .collect();
                store.record_events(&batch).expect("events");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        for _round in 0..rounds {
            for (i, (_, variants)) in phases.iter().enumerate() {
                // Let the worker finish what an earlier phase queued (it has the cores to
                // itself between phases), so that no phase pays for another's shadows.
                let settle = Instant::now() + Duration::from_secs(5);
                while shadow_totals(&store).0 != shadow_totals(&store).1 && Instant::now() < settle
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let before = shadow_totals(&store);
                store
                    .plugins()
                    .set_slot("home", variants.clone())
                    .expect("route");
                let until = Instant::now() + Duration::from_secs_f64(secs);
                let lat: Vec<Vec<Duration>> = std::thread::scope(|q| {
                    let hs: Vec<_> = (0..threads)
                        .map(|t| {
                            let store = &store;
                            q.spawn(move || {
                                let mut out = Vec::new();
                                let mut n = t;
                                while Instant::now() < until {
                                    let ask = Ask::new(Scenario::ForUser)
                                        .user(format!("u{}", n % 500))
                                        .slot("home")
                                        .k(10);
                                    let started = Instant::now();
                                    store.serve(&ask).expect("serve");
                                    out.push(started.elapsed());
                                    n += threads;
                                }
                                out
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().expect("thread")).collect()
                });
                let mut all: Vec<Duration> = lat.into_iter().flatten().collect();
                let qps = all.len() as f64 / secs;
                per_phase[i].0.push(percentile(&mut all, 0.5));
                per_phase[i].1.push(percentile(&mut all, 0.99));
                per_phase[i].2.push(qps);
                // Sampled in this phase, and ranked by the time it ended.
                let after = shadow_totals(&store);
                ranked[i].0 += after.0 - before.0;
                ranked[i].1 += after.2 - before.2;
            }
        }
        stop_writer.store(true, Ordering::Relaxed);
    });
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\n## served for-user on a slot ranked by a9 ({threads} query threads on {} cores, a writer, \
         10,000 items, shadow_cpu {share}), {rounds} alternating rounds of {secs} s; medians of \
         the rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| shadow | p50 | p99 | p99 against no shadow | answers/s | shadow rankings during the phase / answers sampled |\n|---|---|---|---|---|---|");
    let base = med(&per_phase[0].1);
    for (i, (name, _)) in phases.iter().enumerate() {
        let (p50, p99, qps) = (
            med(&per_phase[i].0),
            med(&per_phase[i].1),
            med(&per_phase[i].2),
        );
        println!(
            "| {name} | {p50:.1} µs | {p99:.1} µs | {:+.1}% | {qps:.0} | {} / {} |",
            (p99 / base - 1.0) * 100.0,
            ranked[i].1,
            ranked[i].0
        );
    }
    for r in store.plugins().variant_stats(Some("home")) {
        if let Some(s) = r.shadow {
            println!(
                "shadow spend@{}: {} sampled, {} ranked, {} dropped (no room on the worker); \
                 ranking p50 <= {:.0} µs, p99 <= {:.0} µs; overlap@k {:.3}, rank correlation {:?}",
                r.version,
                s.sampled,
                s.calls,
                s.dropped,
                s.p50_us,
                s.p99_us,
                s.overlap,
                s.rank_correlation
            );
        }
    }
}

fn scenario_queries(dir: &std::path::Path) {
    println!("\n## trending, k = 10, 10,000 items: built-in (gathers k) vs a9-match plugin (gathers rerank_depth)");
    println!("| rerank_depth | built-in | plugin | ratio |\n|---|---|---|---|");
    for depth in [100, 200, 1_000] {
        scenario_query(dir, depth);
    }
}
