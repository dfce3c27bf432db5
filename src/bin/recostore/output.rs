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

/// A time in milliseconds since the Unix epoch, as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// Print a deletion receipt.
pub fn receipt(r: &recostore::DeletionReceipt, as_json: bool) -> Out {
    if as_json {
        return json(r);
    }
    println!("deleted            {}", r.deleted.join(", "));
    if !r.not_found.is_empty() {
        println!("not found          {}", r.not_found.join(", "));
    }
    println!("events removed     {}", r.events_removed);
    if r.events_pruned_earlier > 0 {
        println!(
            "pruned before      {} events (gone from the log then, from the totals now)",
            r.events_pruned_earlier
        );
    }
    println!(
        "taken back         {} baskets and {} sessions ({} item lines of co-occurrence)",
        r.baskets_taken_back, r.sessions_taken_back, r.cooccurrence_lines
    );
    println!(
        "purged             {} derived tags, {} remembered shows",
        r.derived_tags_purged, r.shows_purged
    );
    if r.deleted.is_empty() {
        println!("nothing deleted: no file was rewritten");
        return Ok(());
    }
    let retired: Vec<String> = r.generations_retired.iter().map(u64::to_string).collect();
    println!(
        "segment            generation {} written without them; retired: {}",
        r.generation,
        if retired.is_empty() {
            "none".into()
        } else {
            retired.join(", ")
        }
    );
    println!(
        "sled files         rewritten with live pairs only: {} bytes before, {} after",
        r.sled_bytes_before, r.sled_bytes_after
    );
    if r.own_tag_names_kept > 0 {
        println!(
            "tag names          {} that only they had stay until `recostore compact`",
            r.own_tag_names_kept
        );
    }
    match r.bytes_gone_at_ms {
        Some(ms) => println!("no file holds them since {}", utc(ms)),
        None => {
            println!("files still open by a reader (unlinked when it lets go):");
            for f in &r.files_held {
                println!("  {}", f.display());
            }
        }
    }
    if r.backups_before.is_empty() {
        println!("backups before     none recorded");
    } else {
        println!("backups taken before, which still hold them:");
        for b in &r.backups_before {
            println!("  {} ({})", b.path.display(), utc(b.at_ms));
        }
    }
    Ok(())
}

/// Print what `verify --forgotten` found.
pub fn forgotten(r: &recostore::ForgottenReport, as_json: bool) -> Out {
    if as_json {
        return json(r);
    }
    if r.found.is_empty() {
        println!(
            "`{}`: not found in {} files ({} bytes)",
            r.id, r.files, r.bytes
        );
    } else {
        println!(
            "`{}`: found {}{} times in {} files ({} bytes); an item, a tag or another namespace's user of the same name is found too:",
            r.id,
            r.found.len(),
            if r.more { "+" } else { "" },
            r.files,
            r.bytes
        );
        for f in &r.found {
            println!(
                "  {} at byte {}{}",
                f.path.display(),
                f.offset,
                if f.whole_token {
                    ""
                } else {
                    " (inside a longer string)"
                }
            );
        }
    }
    for p in &r.not_read {
        println!("  not a regular file, not read: {}", p.display());
    }
    if r.problems.is_empty() {
        println!("the event log and the behaviour state agree (verify_deep)");
    } else {
        println!("verify_deep found damage:");
        for p in &r.problems {
            println!("  {p}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_matches_the_calendar() {
        for (ms, want) in [
            (0, "1970-01-01 00:00:00.000"),
            (1_764_921_600_000, "2025-12-05 08:00:00.000"),
            (951_782_400_123, "2000-02-29 00:00:00.123"),
            (4_102_444_799_999, "2099-12-31 23:59:59.999"),
        ] {
            assert_eq!(super::utc(ms), format!("{want} UTC"));
        }
    }
}
