//! Human-readable and JSON rendering of command results.

use std::io::Write;

use recostore::import::ImportSummary;
use recostore::{Answer, QueryStats, Recommendation, Served, Stats, UserMatch};
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

/// Format the non-tag reasons of a recommendation (each reason's `Display`).
pub fn reasons(r: &Recommendation) -> String {
    r.reasons
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Print a scenario's results with their reasons; with `as_json`, the answer in the one
/// shape the socket sends too ([`Answer`]).
pub fn scenario_result(
    scenario: &str,
    served: &Served,
    took: std::time::Duration,
    as_json: bool,
) -> Out {
    if as_json {
        return json(&served.answer(scenario, took));
    }
    scenario_text(scenario, &served.items, took)
}

/// Print a scenario's results under `heading` as text, with the time taken.
pub fn scenario_text(heading: &str, recs: &[Recommendation], took: std::time::Duration) -> Out {
    list(
        heading,
        recs,
        "nothing: no behaviour or tags lead anywhere, or the filters left nothing",
    )?;
    println!("({:.0} µs)", took.as_secs_f64() * 1e6);
    Ok(())
}

/// Print similar users.
pub fn users(heading: &str, users: &[UserMatch], took: std::time::Duration, as_json: bool) -> Out {
    if as_json {
        return json(&Answer::builtin("users-like", users, took));
    }
    println!("{heading}:");
    if users.is_empty() {
        println!("  (no other user shares a tag with this one)");
    }
    for (i, u) in users.iter().enumerate() {
        let tags: Vec<String> = u
            .matched
            .iter()
            .map(|(t, c)| format!("{t} ({c:.2})"))
            .collect();
        println!(
            "  {:>2}. {:<14} {:.3}  because: {}",
            i + 1,
            u.id,
            u.score,
            tags.join(", ")
        );
    }
    Ok(())
}

/// Print a ranked list with explanations, as text.
pub fn recommendations(heading: &str, recs: &[Recommendation]) -> Out {
    list(
        heading,
        recs,
        "no item shares a tag with it and passes the filters",
    )
}

/// Print a ranked list under `heading`, each item with why it is there (reasons, then the
/// matching tags), or `(empty)` when there is nothing.
fn list(heading: &str, recs: &[Recommendation], empty: &str) -> Out {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{heading}:")?;
    if recs.is_empty() {
        writeln!(out, "  ({empty})")?;
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
        let mut why = reasons(r);
        if !r.matched.is_empty() {
            if !why.is_empty() {
                why.push_str("; tags ");
            }
            why.push_str(&because(r));
        }
        writeln!(out, "      because: {why}")?;
    }
    Ok(())
}

/// Print a query's results with the path it took and what it cost.
pub fn query_result(
    scenario: &str,
    heading: &str,
    recs: &[Recommendation],
    stats: &QueryStats,
    took: std::time::Duration,
    as_json: bool,
) -> Out {
    if as_json {
        return json(&Answer::builtin(scenario, recs, took).with_stats(*stats));
    }
    recommendations(heading, recs)?;
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
        return json(v);
    }
    let mut lines = Vec::new();
    flat_lines("", &serde_json::to_value(v)?, &mut lines);
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in lines {
        println!("{k:<width$}  {v}");
    }
    Ok(())
}

/// One `path  value` line per leaf of `v`: objects by dotted path, lists on one line (tag
/// lists as `name=weight`).
fn flat_lines(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flat_lines(&p, v, out);
            }
        }
        Value::Array(items) => {
            let shown: Vec<String> = items
                .iter()
                .map(|x| match x {
                    Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                        format!("{}={}", scalar(&pair[0]), scalar(&pair[1]))
                    }
                    Value::Object(_) | Value::Array(_) => x.to_string(),
                    other => scalar(other),
                })
                .collect();
            out.push((
                prefix.to_string(),
                if shown.is_empty() {
                    "-".into()
                } else {
                    shown.join(", ")
                },
            ));
        }
        other => out.push((prefix.to_string(), scalar(other))),
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
    println!("attribute-only {}", s.attribute_overlay);
    println!(
        "delta index    {} runs ({} KiB), {} records not yet indexed",
        s.delta_runs,
        s.delta_index_bytes / 1024,
        s.delta_unindexed
    );
    println!("events         {}", s.events);
    println!("clock          {}", s.clock);
    println!(
        "co-occurrence  {} basket lines, {} session lines (about {} KiB)",
        s.bought_lines,
        s.viewed_lines,
        s.cooccurrence_bytes / 1024
    );
    Ok(())
}

/// Print an import summary.
pub fn import_summary(s: &ImportSummary, as_json: bool) -> Out {
    if as_json {
        return json(s);
    }
    println!(
        "imported {} items, {} users, {} tags and {} behaviour events from {} rows in {:.1}s ({} rows dropped by policy, {} bad rows skipped, {} events already in the store)",
        s.items, s.users, s.tags, s.recorded, s.events, s.seconds, s.dropped, s.skipped, s.already_stored
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
