//! `recostore demo`: the main job on an embedded default. Generates a shop, loads it with a
//! progress bar, folds it into a segment, and prints recommendations a person can judge.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recostore::demo::{self, DemoConfig};
use recostore::{Ask, Scenario};
use recostore::{Event, Query};

use crate::output;

#[derive(Args)]
pub struct DemoArgs {
    /// Store directory (created if missing; an existing demo store is overwritten in place).
    #[arg(long, default_value = crate::DEFAULT_DIR)]
    dir: PathBuf,
    /// Number of items to generate.
    #[arg(long, default_value_t = DemoConfig::default().items)]
    items: usize,
    /// Number of users to generate.
    #[arg(long, default_value_t = DemoConfig::default().users)]
    users: usize,
    /// Random seed; the same seed gives the same shop.
    #[arg(long, default_value_t = DemoConfig::default().seed)]
    seed: u64,
}

const BATCH: usize = 5_000;

pub fn run(a: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = DemoConfig {
        items: a.items,
        users: a.users,
        seed: a.seed,
    };
    println!(
        "Generating a shop: {} items, {} users (seed {})",
        cfg.items, cfg.users, cfg.seed
    );
    let t = Instant::now();
    let shop = demo::generate(cfg);
    let baskets: usize = shop.baskets.iter().map(Vec::len).sum();
    println!(
        "  {baskets} baskets generated in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    let store = crate::open_with(&a.dir, crate::with_bars(recostore::Config::default(), true))?;
    let bar = ProgressBar::with_draw_target(
        Some((cfg.items + cfg.users) as u64),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template(
            "  loading {bar:40} {pos}/{len} records ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t = Instant::now();
    for chunk in shop.items.chunks(BATCH) {
        store.upsert_items(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    for chunk in shop.users.chunks(BATCH) {
        store.upsert_users(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    store.flush()?;
    bar.finish_and_clear();
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = store.rebuild()?;
    println!(
        "  loaded {} records in {load:.2}s ({:.0}/s), segment {} built in {:.2}s ({:.1} MiB) at {}",
        cfg.items + cfg.users,
        (cfg.items + cfg.users) as f64 / load.max(1e-9),
        report.generation,
        t.elapsed().as_secs_f64(),
        report.bytes as f64 / (1 << 20) as f64,
        a.dir.display()
    );

    // The baskets become purchase events (one session per basket, a week apart per user), which
    // is what the co-occurrence scenarios and the derived user tags are built from.
    let t = Instant::now();
    let mut events = Vec::with_capacity(baskets);
    for (u, user_baskets) in shop.baskets.iter().enumerate() {
        let user = &shop.users[u].id;
        for (b, basket) in user_baskets.iter().enumerate() {
            let ts = 1_700_000_000 + b as u64 * 7 * 86_400 + u as u64 * 60;
            for &i in basket {
                let item = &shop.items[i];
                events.push(
                    Event::purchase(user.clone(), item.id.clone(), 1, item.price, ts)
                        .session(format!("{user}/{b}")),
                );
            }
        }
    }
    // Deduplicated like the imports: running the demo again on the same store records
    // nothing twice (the records above are upserts, the same either way).
    let mut run = store.dedup_run();
    let (mut recorded, mut skipped) = (0, 0);
    for chunk in events.chunks(BATCH) {
        let (r, s) = store.record_events_once(chunk, &mut run)?;
        recorded += r;
        skipped += s;
    }
    store.flush()?;
    println!(
        "  {recorded} purchase events recorded in {:.2}s{}",
        t.elapsed().as_secs_f64(),
        if skipped > 0 {
            format!(" ({skipped} already in this store from an earlier run, not recorded again)")
        } else {
            String::new()
        }
    );

    // Show substitutes for the first purchase of a few users: popular items, as a shop's
    // product pages would see most.
    let picks: Vec<usize> = shop
        .baskets
        .iter()
        .filter_map(|b| b.first()?.first().copied())
        .take(3)
        .collect();
    for &i in &picks {
        let item = &shop.items[i];
        println!();
        let t = Instant::now();
        let (recs, stats) = store.query_with_stats(&Query::similar_to(&item.id).k(5))?;
        let took = t.elapsed();
        output::recommendations(
            &format!(
                "Similar to {} \"{}\" ({:.3} ms, {:?} path)",
                item.id,
                item.title,
                took.as_secs_f64() * 1e3,
                stats.path
            ),
            &recs,
        )?;
    }

    // The best-seller (the top of the trending list) on its product page (substitutes) and in
    // a cart (complements).
    let best = store.recommend(&Ask::new(Scenario::Trending).k(1))?;
    if let Some(top) = best.first() {
        for (scenario, title) in [
            (
                Scenario::Substitutes {
                    item: top.id.clone(),
                },
                "Instead of",
            ),
            (
                Scenario::Complements {
                    item: top.id.clone(),
                },
                "Goes with",
            ),
        ] {
            println!();
            let t = Instant::now();
            let recs = store.recommend(&Ask::new(scenario).k(5))?;
            output::scenario_text(
                &format!("{title} {} \"{}\" (the best-seller)", top.id, top.title),
                &recs,
                t.elapsed(),
            )?;
        }
    }

    if let Some(user) =
        store.get_user(&shop.users.first().map(|u| u.id.clone()).unwrap_or_default())
    {
        println!();
        let mut by_weight = user.tags.clone();
        by_weight.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = by_weight
            .iter()
            .take(6)
            .map(|(t, w)| format!("{t} {w:.2}"))
            .collect();
        println!(
            "{} has bought {} items; derived tags: {}",
            user.id,
            user.recent_items.len(),
            top.join(", ")
        );
        let t = Instant::now();
        let ask = Ask::new(Scenario::ForUser)
            .user(user.id.clone())
            .exclude_purchased()
            .k(5);
        let recs = store.recommend(&ask)?;
        output::scenario_text(
            &format!(
                "For {} (home page: for-user, already bought excluded)",
                user.id
            ),
            &recs,
            t.elapsed(),
        )?;
    }
    println!();
    println!(
        "Try: recostore query similar sku-000042 --dir {0}\n     recostore query complements {2} --dir {0}\n     recostore query for-user {1} --exclude-purchased --dir {0}",
        a.dir.display(),
        shop.users.first().map_or("", |u| u.id.as_str()),
        best.first().map_or("sku-000042", |r| r.id.as_str())
    );
    Ok(())
}
