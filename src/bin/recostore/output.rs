//! Human-readable and JSON rendering of command results.

use std::io::Write;

use recostore::import::ImportSummary;
use recostore::{QueryStats, Recommendation, Stats};
use serde::Serialize;

type Out = Result<(), Box<dyn std::error::Error>>;

/// Print any serialisable value as pretty JSON.
pub fn json<T: Serialize>(v: &T) -> Out {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Format an explanation as `tag (contribution), ...`.
pub fn because(r: &Recommendation) -> String {
    r.matched
        .iter()
        .map(|(t, c)| format!("{t} ({c:.2})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Print a ranked list with explanations.
pub fn recommendations(heading: &str, recs: &[Recommendation], as_json: bool) -> Out {
    if as_json {
        return json(&recs);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{heading}:")?;
    if recs.is_empty() {
        writeln!(
            out,
            "  (no item shares a tag with it and passes the filters)"
        )?;
    }
    for (i, r) in recs.iter().enumerate() {
        writeln!(
            out,
            "  {:>2}. {:<14} {:.3}  {}",
            i + 1,
            r.id,
            r.score,
            r.title
        )?;
        writeln!(out, "      because: {}", because(r))?;
    }
    Ok(())
}

/// Print a query's results with the path it took and what it cost.
pub fn query_result(
    heading: &str,
    recs: &[Recommendation],
    stats: &QueryStats,
    took: std::time::Duration,
    as_json: bool,
) -> Out {
    if as_json {
        #[derive(Serialize)]
        struct Doc<'a> {
            results: &'a [Recommendation],
            stats: &'a QueryStats,
            micros: u128,
        }
        return json(&Doc {
            results: recs,
            stats,
            micros: took.as_micros(),
        });
    }
    recommendations(heading, recs, false)?;
    println!(
        "({:?} path, {} scored, {} postings read, {:.0} µs)",
        stats.path,
        stats.scored,
        stats.postings,
        took.as_secs_f64() * 1e6
    );
    Ok(())
}

/// Print an item or user.
pub fn record<T: Serialize + std::fmt::Debug>(v: &T, as_json: bool) -> Out {
    if as_json {
        json(v)
    } else {
        let text = serde_json::to_string_pretty(v)?;
        println!("{text}");
        Ok(())
    }
}

/// Print store stats.
pub fn stats(s: &Stats, as_json: bool) -> Out {
    if as_json {
        return json(s);
    }
    println!("items          {}", s.items);
    println!("users          {}", s.users);
    println!("tags           {}", s.tags);
    println!("generation     {}", s.generation);
    println!("segment bytes  {}", s.segment_bytes);
    println!("delta records  {}", s.delta_records);
    Ok(())
}

/// Print an import summary.
pub fn import_summary(s: &ImportSummary, as_json: bool) -> Out {
    if as_json {
        return json(s);
    }
    println!(
        "imported {} items, {} users, {} tags from {} events in {:.1}s ({} rows dropped by policy, {} bad rows skipped)",
        s.items, s.users, s.tags, s.events, s.seconds, s.dropped, s.skipped
    );
    for b in &s.bad_rows {
        println!("  bad row {}:{}: {}", b.file, b.line, b.reason);
    }
    if s.skipped as usize > s.bad_rows.len() {
        println!(
            "  ... and {} more (RUST_LOG=warn lists them all)",
            s.skipped as usize - s.bad_rows.len()
        );
    }
    Ok(())
}
