//! Helpers both importers share: opening files with progress reports, reading CSV rows with their
//! line numbers, cleaning tags to what the store accepts, and writing in batches.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::report::{ImportOptions, ImportSummary};
use crate::error::{Error, Result};
use crate::model::{Item, Tag, User, MAX_ID_BYTES, MAX_TAG_BYTES};
use crate::progress::{Meter, Metered};
use crate::Store;

/// Records per `upsert_items` / `upsert_users` call.
pub(crate) const BATCH: usize = 5_000;

/// Open a file for reading and return it with its length in bytes.
pub(crate) fn open_file(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", path, e))?
        .len();
    Ok((file, len))
}

/// The name bad rows are reported under: the file name, or the whole path if it has none.
pub(crate) fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A reader of `file` (`name`, `len` bytes) that reports the bytes read to the import's
/// progress callback, and the meter to tell it the file is done.
pub(crate) fn metered<R>(
    opts: &ImportOptions,
    name: &str,
    len: u64,
    file: R,
) -> (Metered<R>, Arc<Meter>) {
    let meter = Arc::new(Meter::new(opts.progress.as_ref(), name, len));
    (Metered::new(file, meter.clone()), meter)
}

/// A CSV reader that tolerates rows of any length (they are checked, and reported, by us).
pub(crate) fn csv_reader<R: Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(r)
}

/// Check the header row against the expected column names (case-insensitive, a UTF-8 BOM is
/// ignored). A different header means the file is not what we think it is, so this fails
/// whether or not the import is strict.
pub(crate) fn check_header<R: Read>(
    rdr: &mut csv::Reader<R>,
    path: &Path,
    name: &str,
    expected: &[&str],
) -> Result<()> {
    let header = rdr.byte_headers().map_err(|e| csv_error(path, e))?;
    let found: Vec<String> = header
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let matches = found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(f, e)| f.eq_ignore_ascii_case(e));
    if matches {
        return Ok(());
    }
    Err(Error::BadInput {
        source_name: name.to_string(),
        line: 1,
        reason: format!(
            "expected the header `{}`, found `{}`; is this the right file?",
            expected.join(","),
            show(&found.join(","))
        ),
    })
}

/// Read the next record; `false` at the end of the file.
pub(crate) fn read_row<R: Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut csv::ByteRecord,
    path: &Path,
) -> Result<bool> {
    rdr.read_byte_record(rec).map_err(|e| csv_error(path, e))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let msg = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io("reading", path, io),
        _ => Error::io(
            "reading",
            path,
            io::Error::new(io::ErrorKind::InvalidData, msg),
        ),
    }
}

/// 1-based line the record starts on.
pub(crate) fn line_of(rec: &csv::ByteRecord) -> u64 {
    rec.position().map_or(0, |p| p.line())
}

/// Field `i`, decoded leniently (invalid UTF-8 becomes U+FFFD) and trimmed.
pub(crate) fn field(rec: &csv::ByteRecord, i: usize) -> Cow<'_, str> {
    match String::from_utf8_lossy(rec.get(i).unwrap_or_default()) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

pub(crate) fn wrong_columns(expected: usize, found: usize) -> String {
    format!("expected {expected} columns, found {found}")
}

/// An id must be non-empty and fit the store's limit.
pub(crate) fn check_id(what: &str, id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        Err(format!("{what} is empty"))
    } else if id.len() > MAX_ID_BYTES {
        Err(format!(
            "{what} is {} bytes, the limit is {MAX_ID_BYTES}",
            id.len()
        ))
    } else {
        Ok(())
    }
}

/// Shorten user text for a message.
pub(crate) fn show(s: &str) -> String {
    crate::model::display_id(s)
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Make tags acceptable to the store: names cut to [`MAX_TAG_BYTES`], empty names and
/// non-finite or non-positive weights dropped, duplicate names merged (largest weight wins), and
/// at most `max_tags` kept (heaviest first; ties by name, so the result is deterministic).
pub(crate) fn clean_tags(tags: Vec<Tag>, max_tags: usize) -> Vec<Tag> {
    let mut merged: HashMap<String, f32> = HashMap::with_capacity(tags.len());
    for (name, w) in tags {
        if name.is_empty() || !w.is_finite() || w <= 0.0 {
            continue;
        }
        let e = merged
            .entry(truncate_utf8(name, MAX_TAG_BYTES))
            .or_insert(w);
        *e = e.max(w);
    }
    let mut out: Vec<Tag> = merged.into_iter().collect();
    sort_heaviest_first(&mut out);
    out.truncate(max_tags);
    out
}

fn sort_heaviest_first(tags: &mut [Tag]) {
    tags.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// Scale accumulated weights so the largest is 1.0 and keep the `keep` heaviest.
pub(crate) fn scale_top<S: AsRef<str>>(weights: HashMap<S, f32>, keep: usize) -> Vec<Tag> {
    let max = weights
        .values()
        .copied()
        .filter(|w| w.is_finite())
        .fold(0.0f32, f32::max);
    if max <= 0.0 {
        return Vec::new();
    }
    let tags = weights
        .into_iter()
        .map(|(n, w)| (n.as_ref().to_string(), w / max))
        .collect();
    clean_tags(tags, keep)
}

/// The last `keep` distinct ids of a sequence ordered oldest first, newest last.
pub(crate) fn last_distinct<'a>(
    seq: impl DoubleEndedIterator<Item = &'a str>,
    keep: usize,
) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for id in seq.rev() {
        if out.len() == keep {
            break;
        }
        if seen.insert(id) {
            out.push(id.to_string());
        }
    }
    out.reverse();
    out
}

/// Events per `record_events` call.
pub(crate) const EVENT_BATCH: usize = 10_000;

/// Record `events` in time order (so implicit sessions and decay see them as they happened),
/// in batches of [`EVENT_BATCH`], then flush. Events the store already held before this
/// import began are skipped ([`Store::record_events_once`]) and counted in `already_stored`: running
/// an import again, or again after it was killed part-way, gives the store a clean import
/// would, never doubled events.
pub(crate) fn record_events(
    store: &Store,
    mut events: Vec<crate::Event>,
    summary: &mut ImportSummary,
) -> Result<()> {
    events.sort_by_key(|e| e.ts); // stable: equal times keep file order
    let mut run = store.dedup_run();
    for chunk in events.chunks(EVENT_BATCH) {
        let (recorded, skipped) = store.record_events_once_paced(chunk, &mut run)?;
        summary.recorded += recorded as u64;
        summary.already_stored += skipped as u64;
    }
    store.flush()
}

/// Write items, then users (a user's recent items must already exist), in batches of
/// [`BATCH`], rebuild the segment, and fill the counts of `summary`.
pub(crate) fn write_records(
    store: &Store,
    items: &[Item],
    users: &[User],
    summary: &mut ImportSummary,
) -> Result<()> {
    for chunk in items.chunks(BATCH) {
        store.upsert_items(chunk)?;
    }
    for chunk in users.chunks(BATCH) {
        store.upsert_users(chunk)?;
    }
    store.rebuild()?;
    store.flush()?;
    let mut names: HashSet<&str> = HashSet::new();
    names.extend(
        items
            .iter()
            .flat_map(|i| i.tags.iter().map(|(n, _)| n.as_str())),
    );
    names.extend(
        users
            .iter()
            .flat_map(|u| u.tags.iter().map(|(n, _)| n.as_str())),
    );
    summary.items = items.len();
    summary.users = users.len();
    summary.tags = names.len();
    Ok(())
}

/// `t` if it is no later than `latest` (see [`crate::Config::future_tolerance_secs`]), else
/// the reason the row is bad: one far-future row would move the store's clock and decay
/// every profile.
pub(crate) fn not_future(t: u64, latest: u64) -> std::result::Result<u64, String> {
    if t <= latest {
        Ok(t)
    } else {
        Err(format!(
            "its time {t} is in the future (this machine allows up to {latest}, \
             Config::future_tolerance_secs); fix the row or drop it"
        ))
    }
}
