//! Hostile plugins are contained: each fault is counted, the query is answered by the
//! built-in ranker, the process survives, and nothing stalls past the deadline.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use std::time::{Duration, Instant};

use plugin_support::{shop, Wat};
use recostore::plugin::FaultCounts;
use recostore::{Ask, Scenario};
use recostore::{Error, PluginLimits, Store};

const DEADLINE: Duration = Duration::from_millis(20);

fn limits() -> PluginLimits {
    PluginLimits::default()
        .deadline(DEADLINE)
        .memory_bytes(4 << 20)
        .faults_in_a_row(1_000)
}

fn trending() -> Ask {
    Ask::new(Scenario::Trending).k(10)
}

fn ids(store: &Store, ask: &Ask) -> Vec<String> {
    store
        .recommend(ask)
        .expect("answer")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Load `wat` as `name`; it must pass the load checks.
fn load(store: &Store, name: &str, wat: Wat) {
    store
        .plugins()
        .load(name, wat.text().as_bytes())
        .unwrap_or_else(|e| panic!("{name} should pass the load checks: {e}"));
}

/// Load `wat` as `name`, query through it three times, and check every answer is the
/// built-in one with a fallback noted. Returns the fault counters.
fn contained(store: &Store, name: &str, wat: &Wat) -> FaultCounts {
    store
        .plugins()
        .load(name, wat.text().as_bytes())
        .unwrap_or_else(|e| panic!("{name} should pass the load checks: {e}"));
    let builtin = ids(store, &trending());
    for _ in 0..3 {
        let started = Instant::now();
        let served = store
            .serve(&trending().strategy(name))
            .expect("the store keeps answering");
        assert!(
            started.elapsed() < DEADLINE + Duration::from_millis(500),
            "{name}: a query took {:?}",
            started.elapsed()
        );
        let got: Vec<String> = served.items.into_iter().map(|r| r.id).collect();
        assert_eq!(got, builtin, "{name}: the fallback is the built-in order");
        assert!(
            served.ranked_by.fallback.is_some(),
            "{name}: the answer says it fell back"
        );
    }
    let info = store.plugins().info(name).expect("still loaded");
    assert_eq!(info.faults.total(), 3, "{name}: every fault counted");
    info.faults
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "spin",
        &Wat {
            hostile: "(loop $spin (br $spin))",
            ..Wat::default()
        },
    );
    assert_eq!(f.deadline, 3);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "bomb",
        &Wat {
            hostile:
                "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))",
            ..Wat::default()
        },
    );
    assert_eq!(f.memory, 3);
}

#[test]
fn deep_recursion_overflows_the_wasm_stack() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "deep",
        &Wat {
            hostile: "(drop (call $rec (i32.const 0)))",
            extra: "(func $rec (param i32) (result i32) \
                    (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
            ..Wat::default()
        },
    );
    assert_eq!(f.stack, 3);
}

#[test]
fn out_of_bounds_output_pointer_is_bad_output() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "oob",
        &Wat {
            // Fine for the smoke run's 16 candidates, far outside memory otherwise.
            input: "(if (result i32) (i32.eq (local.get $n) (i32.const 16)) \
                    (then (i32.const 1024)) (else (i32.const 0x7ffffff0)))",
            ..Wat::default()
        },
    );
    assert_eq!(f.bad_output, 3);
}

#[test]
fn wrong_output_length_is_bad_output() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "short",
        &Wat {
            hostile: "(return (i32.sub (local.get $n) (i32.const 1)))",
            ..Wat::default()
        },
    );
    assert_eq!(f.bad_output, 3);
}

#[test]
fn panic_is_a_trap() {
    let (_d, store) = shop(limits());
    let f = contained(
        &store,
        "panic",
        &Wat {
            hostile: "unreachable",
            ..Wat::default()
        },
    );
    assert_eq!(f.trap, 3);
}

#[test]
fn nan_and_infinite_scores_rank_last_and_are_counted() {
    let (_d, store) = shop(plugin_support::relaxed().faults_in_a_row(1_000));
    // Scores: +inf for candidate 0, NaN for the rest but the last, which keeps a real score.
    let hostile = "(local.set $i (i32.const 0))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (f32.store
          (i32.add (i32.const 1056)
            (i32.mul (i32.add (i32.mul (local.get $n) (i32.const 2)) (local.get $i)) (i32.const 4)))
          (select (f32.const inf)
            (select (f32.const 1) (f32.const nan)
              (i32.eq (local.get $i) (i32.sub (local.get $n) (i32.const 1))))
            (i32.eqz (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (return (local.get $n))";
    load(
        &store,
        "nan",
        Wat {
            hostile,
            ..Wat::default()
        },
    );
    let served = store
        .serve(&trending().strategy("nan").k(30))
        .expect("answer");
    assert!(
        served.ranked_by.fallback.is_none(),
        "not a fault: the ABI defines NaN"
    );
    let scores: Vec<f32> = served.items.iter().map(|r| r.score).collect();
    assert_eq!(scores[0], f32::MAX, "+inf is clamped and first");
    assert_eq!(scores[1], 1.0, "the one real score is next");
    assert!(
        scores[2..].iter().all(|s| *s == f32::NEG_INFINITY),
        "NaN last"
    );
    let info = store.plugins().info("nan").expect("loaded");
    assert_eq!(info.faults.total(), 0);
    assert_eq!(info.non_finite_scores, 29);
}

#[test]
fn a_flood_of_logs_is_cut_and_counted() {
    let (_d, store) = shop(plugin_support::relaxed().faults_in_a_row(1_000));
    let hostile = "(local.set $i (i32.const 0))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
        (call $log (i32.const 2) (i32.const 0) (i32.const 19))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (local.set $i (i32.const 0))";
    load(
        &store,
        "chatty",
        Wat {
            hostile,
            ..Wat::default()
        },
    );
    let served = store.serve(&trending().strategy("chatty")).expect("answer");
    assert!(served.ranked_by.fallback.is_none());
    let info = store.plugins().info("chatty").expect("loaded");
    let kept = u64::from(store.plugins().limits().logs_per_call);
    assert_eq!(info.logs_dropped, 10_000 - kept);
}

#[test]
fn missing_export_and_forbidden_import_are_refused_at_load() {
    let (_d, store) = shop(limits());
    let before = ids(&store, &trending());
    let missing = Wat {
        score_name: "score_elsewhere",
        ..Wat::default()
    };
    let err = store
        .plugins()
        .load("missing", missing.text().as_bytes())
        .expect_err("no recostore_score");
    assert!(
        matches!(&err, Error::PluginRejected { reason, .. } if reason.contains("recostore_score")),
        "{err}"
    );
    let wasi = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        ..Wat::default()
    };
    let err = store
        .plugins()
        .load("wasi", wasi.text().as_bytes())
        .expect_err("forbidden import");
    assert!(
        matches!(&err, Error::PluginRejected { reason, .. } if reason.contains("fd_write")),
        "{err}"
    );
    assert!(store.plugins().list().is_empty(), "nothing was published");
    assert_eq!(
        ids(&store, &trending()),
        before,
        "the store keeps answering"
    );
    let err = store
        .recommend(&trending().strategy("missing"))
        .expect_err("asking for an unloaded plugin is an error");
    assert!(matches!(err, Error::PluginNotFound { .. }), "{err}");
}

#[test]
fn a_plugin_that_keeps_faulting_is_disabled() {
    let (_d, store) = shop(limits().faults_in_a_row(3));
    load(
        &store,
        "panic",
        Wat {
            hostile: "unreachable",
            ..Wat::default()
        },
    );
    for _ in 0..3 {
        store.serve(&trending().strategy("panic")).expect("answer");
    }
    let info = store.plugins().info("panic").expect("loaded");
    assert!(info.disabled.is_some(), "disabled after 3 faults in a row");
    let served = store.serve(&trending().strategy("panic")).expect("answer");
    assert_eq!(served.ranked_by.fallback.as_deref(), Some("disabled"));
    assert_eq!(
        store.plugins().info("panic").expect("loaded").faults.trap,
        3,
        "a disabled plugin is not called"
    );
    store.plugins().enable("panic").expect("enable");
    assert!(store
        .plugins()
        .info("panic")
        .expect("loaded")
        .disabled
        .is_none());
}

#[test]
fn a_spinning_plugin_does_not_stall_other_queries() {
    let (_d, store) = shop(limits());
    load(
        &store,
        "spin",
        Wat {
            hostile: "(loop $spin (br $spin))",
            ..Wat::default()
        },
    );
    std::thread::scope(|s| {
        let spinner = s.spawn(|| {
            for _ in 0..20 {
                store.serve(&trending().strategy("spin")).expect("answer");
            }
        });
        let mut worst = Duration::ZERO;
        while !spinner.is_finished() {
            let started = Instant::now();
            store.recommend(&trending()).expect("answer");
            worst = worst.max(started.elapsed());
        }
        assert!(
            worst < DEADLINE + Duration::from_millis(500),
            "a built-in query waited {worst:?}"
        );
    });
    assert_eq!(
        store
            .plugins()
            .info("spin")
            .expect("loaded")
            .faults
            .deadline,
        20
    );
}

/// Peak resident memory of this test process, in bytes (Linux; `None` elsewhere).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Tests run in parallel threads of one process: the peak must stay far below what each
/// attack used before its limit (1.5 GB for the table, 300-600 MB for the compile bombs).
const RSS_CEILING: u64 = 400 << 20;

fn check_rss(what: &str) {
    if let Some(peak) = peak_rss() {
        assert!(
            peak < RSS_CEILING,
            "{what}: the process peaked at {} MiB",
            peak >> 20
        );
    }
}

#[test]
fn table_growth_is_bounded_at_call_time_at_start_and_by_declaration() {
    let (_d, store) = shop(limits());
    // Growing a table by 50M elements during a call: refused, counted, fallen back.
    let f = contained(
        &store,
        "tablegrow",
        &Wat {
            hostile: "(drop (table.grow $t (ref.null func) (i32.const 50000000)))",
            extra: "(table $t 1 funcref)",
            ..Wat::default()
        },
    );
    assert_eq!(
        f.memory, 3,
        "a refused table growth is a memory fault: {f:?}"
    );
    // From a start function, and declared up front: refused at load.
    for (name, extra) in [
        (
            "tablestart",
            "(table $t 1 funcref) \
             (func $boom (drop (table.grow $t (ref.null func) (i32.const 50000000)))) \
             (start $boom)",
        ),
        ("tabledecl", "(table $t 50000000 funcref)"),
    ] {
        let wat = Wat {
            extra,
            ..Wat::default()
        };
        let e = store
            .plugins()
            .load(name, wat.text().as_bytes())
            .expect_err("refused");
        assert!(matches!(e, Error::PluginRejected { .. }), "{name}: {e}");
    }
    // Within the limit, a table still works.
    load(
        &store,
        "tablesmall",
        Wat {
            extra: "(table $t 1000 funcref)",
            ..Wat::default()
        },
    );
    check_rss("table growth");
}

/// A module of `functions` empty functions plus the ABI's own, as binary wasm.
fn many_functions(functions: usize) -> Vec<u8> {
    let extra = "(func)".repeat(functions);
    wat::parse_str(
        Wat {
            extra: &extra,
            ..Wat::default()
        }
        .text(),
    )
    .expect("valid wat")
}

#[test]
fn compile_bombs_under_the_size_cap_are_refused_before_compiling() {
    let (_d, store) = shop(limits());
    let cap = store.plugins().limits().max_functions;
    // 100,000 functions in under 1 MB.
    let wasm = many_functions(100_000);
    assert!(wasm.len() < 1 << 20);
    let started = Instant::now();
    let e = store.plugins().load("many", &wasm).expect_err("refused");
    assert!(e.to_string().contains("max_functions"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Just under the cap loads.
    store
        .plugins()
        .load("atcap", &many_functions(cap - 10))
        .expect("a module under the function cap loads");
    // 300,000 nested blocks, in WAT text and in binary.
    let depth = 300_000;
    let body = format!("{}{}", "block ".repeat(depth), "end ".repeat(depth));
    let text = Wat {
        extra: &format!("(func $deep {body})"),
        ..Wat::default()
    }
    .text();
    let started = Instant::now();
    for wasm in [
        text.as_bytes().to_vec(),
        wat::parse_str(&text).expect("valid wat"),
    ] {
        let e = store.plugins().load("deep", &wasm).expect_err("refused");
        assert!(e.to_string().contains("max_nesting"), "{e}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // One function body over 1 MiB (400,000 `i32.const 0; drop` pairs, 1.2 MB of code).
    let big = format!("(func $big {})", "i32.const 0 drop ".repeat(400_000));
    let wasm = wat::parse_str(
        Wat {
            extra: &big,
            ..Wat::default()
        }
        .text(),
    )
    .expect("valid wat");
    assert!(wasm.len() < store.plugins().limits().max_module_bytes);
    let e = store.plugins().load("big", &wasm).expect_err("refused");
    assert!(e.to_string().contains("max_function_bytes"), "{e}");
    // Nesting at the cap loads.
    let depth = store.plugins().limits().max_nesting - 5;
    let body = format!("{}{}", "block ".repeat(depth), "end ".repeat(depth));
    load(
        &store,
        "nested",
        Wat {
            extra: &format!("(func $deep {body})"),
            ..Wat::default()
        },
    );
    check_rss("compile bombs");
}
