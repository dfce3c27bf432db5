//! Bring your own data: items, users and events as JSON lines, streamed in batches.
//!
//! The line formats are in `FORMAT.md` ("JSON lines"); [`JsonItem`], [`JsonUser`] and
//! [`JsonEvent`] are the same thing in code, and `recostore export jsonl` writes them back.
//! Unknown fields are ignored and missing optional fields take their defaults. A bad line is
//! reported with its number and skipped; `--strict` checks every line of every file first and
//! stores nothing if one is bad. Re-running a file upserts records and skips events already
//! logged, so it never duplicates anything.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::common::{display_name, metered, BATCH, EVENT_BATCH};
use super::report::{ImportOptions, ImportSummary};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::model::{validate_item, validate_user, Item, User};
use crate::progress::Meter;
use crate::Store;

/// A `tags` object, refusing a name given twice: JSON allows it, and a plain map would keep
/// the last weight without a word.
fn unique_tags<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, f32>, D::Error> {
    struct Tags;
    impl<'de> serde::de::Visitor<'de> for Tags {
        type Value = BTreeMap<String, f32>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of tag name to weight")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((name, weight)) = map.next_entry::<String, f32>()? {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "tag `{}` is given twice; give each tag once",
                        crate::model::display_id(&name)
                    )));
                }
                out.insert(name, weight);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Tags)
}

/// Weights of 0 store nothing (the library drops them), and subnormal ones are below what a
/// weight can mean: in a file, both are more likely a mistake than an intent, so the line is
/// reported rather than quietly changed.
fn check_weights(tags: &BTreeMap<String, f32>) -> std::result::Result<(), String> {
    match tags.iter().find(|(_, w)| **w == 0.0 || w.is_subnormal()) {
        Some((name, w)) => Err(format!(
            "tag `{}` has weight {w}, which stores nothing; leave the tag out or give it a \
             weight of at least {:e}",
            crate::model::display_id(name),
            f32::MIN_POSITIVE
        )),
        None => Ok(()),
    }
}

/// One item line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonItem {
    /// The item id (required).
    pub id: String,
    /// Tag name → weight (> 0, finite). A name given twice is refused, not overwritten.
    #[serde(deserialize_with = "unique_tags")]
    pub tags: BTreeMap<String, f32>,
    /// Display title.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Category path, `/`-separated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub category: String,
    /// Unit price.
    pub price: f32,
    /// Units in stock.
    pub stock: u32,
    /// Only members may buy it.
    pub members_only: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: u64,
}

/// One user line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonUser {
    /// The user id (required).
    pub id: String,
    /// Tag name → weight (> 0, finite). A name given twice is refused, not overwritten.
    #[serde(deserialize_with = "unique_tags")]
    pub tags: BTreeMap<String, f32>,
    /// Recently viewed item ids, newest last (they must exist).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_items: Vec<String>,
}

/// One event line: a flat object whose `kind` says which of the optional fields matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonEvent {
    /// The user id (required; created if new).
    pub user: String,
    /// The item id (required except for `search` and `impression`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// `view`, `click`, `search`, `favourite`, `cart`, `purchase`, `rating`, `review` or
    /// `impression` (required).
    pub kind: String,
    /// Seconds since the epoch (required).
    pub ts: u64,
    /// The session or order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `purchase`: units (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<u32>,
    /// `purchase`: unit price (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f32>,
    /// `rating`: 0 to 5 (required for ratings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f32>,
    /// `search`: what was typed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `impression`: the slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// `impression`: the strategy that ranked the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// `impression`: the items shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
}

impl From<&Item> for JsonItem {
    fn from(i: &Item) -> Self {
        JsonItem {
            id: i.id.clone(),
            tags: i.tags.iter().cloned().collect(),
            title: i.title.clone(),
            category: i.category.clone(),
            price: i.price,
            stock: i.stock,
            members_only: i.members_only,
            created_at: i.created_at,
        }
    }
}

impl From<JsonItem> for Item {
    fn from(j: JsonItem) -> Self {
        let mut item = Item::new(j.id, j.tags)
            .title(j.title)
            .category(j.category)
            .price(j.price)
            .stock(j.stock);
        item.members_only = j.members_only;
        item.created_at = j.created_at;
        item
    }
}

impl From<&User> for JsonUser {
    fn from(u: &User) -> Self {
        JsonUser {
            id: u.id.clone(),
            tags: u.tags.iter().cloned().collect(),
            recent_items: u.recent_items.clone(),
        }
    }
}

impl From<JsonUser> for User {
    fn from(j: JsonUser) -> Self {
        let mut u = User::new(j.id, j.tags);
        u.recent_items = j.recent_items;
        u
    }
}

impl From<&Event> for JsonEvent {
    fn from(e: &Event) -> Self {
        let mut j = JsonEvent {
            user: e.user.clone(),
            item: e.item.clone(),
            kind: e.kind.name().to_string(),
            ts: e.ts,
            session: e.session.clone(),
            ..JsonEvent::default()
        };
        match &e.kind {
            EventKind::Purchase { qty, price } => {
                j.qty = Some(*qty);
                j.price = Some(*price);
            }
            EventKind::Rating { value } => j.rating = Some(*value),
            EventKind::Search { query } => j.query = Some(query.clone()),
            EventKind::Impression {
                slot,
                strategy,
                items,
            } => {
                j.slot = Some(slot.clone());
                j.strategy = Some(strategy.clone());
                j.items = Some(items.clone());
            }
            _ => {}
        }
        j
    }
}

impl TryFrom<JsonEvent> for Event {
    type Error = String;

    fn try_from(j: JsonEvent) -> std::result::Result<Event, String> {
        let need = |field: &str| format!("a `{}` event needs `{field}`", j.kind);
        let kind = match j.kind.as_str() {
            "view" => EventKind::View,
            "click" => EventKind::Click,
            "favourite" => EventKind::Favourite,
            "cart" => EventKind::Cart,
            "review" => EventKind::Review,
            "search" => EventKind::Search {
                query: j.query.clone().ok_or_else(|| need("query"))?,
            },
            "purchase" => EventKind::Purchase {
                qty: j.qty.unwrap_or(1),
                price: j.price.unwrap_or(0.0),
            },
            "rating" => EventKind::Rating {
                value: j.rating.ok_or_else(|| need("rating"))?,
            },
            "impression" => EventKind::Impression {
                slot: j.slot.clone().unwrap_or_default(),
                strategy: j.strategy.clone().unwrap_or_default(),
                items: j.items.clone().unwrap_or_default(),
            },
            "" => return Err("`kind` is missing".into()),
            other => {
                return Err(format!(
                    "unknown kind `{}`; kinds are view, click, search, favourite, cart, \
                     purchase, rating, review, impression",
                    crate::model::display_id(other)
                ))
            }
        };
        if j.ts == 0 {
            return Err("`ts` (seconds since the epoch) is missing or 0".into());
        }
        Ok(Event {
            user: j.user,
            item: j.item,
            kind,
            ts: j.ts,
            session: j.session,
        })
    }
}

/// Which files to import; any subset.
#[derive(Debug, Clone, Default)]
pub struct JsonlFiles {
    /// Item lines (`-` for stdin; `.gz` is decompressed).
    pub items: Option<PathBuf>,
    /// User lines.
    pub users: Option<PathBuf>,
    /// Event lines.
    pub events: Option<PathBuf>,
}

/// Lines read from one source, with their 1-based numbers; the bytes consumed (compressed
/// bytes for `.gz`) go to the progress meter.
struct Lines {
    name: String,
    reader: Box<dyn BufRead>,
    line: u64,
    meter: Arc<Meter>,
}

impl Lines {
    fn open(path: &Path, opts: &ImportOptions) -> Result<Lines> {
        let (raw, len, name): (Box<dyn Read>, u64, String) = if path == Path::new("-") {
            (Box::new(io::stdin()), 0, "stdin".into())
        } else {
            let (f, len) = super::common::open_file(path)?;
            (Box::new(f), len, display_name(path))
        };
        let (counted, meter) = metered(opts, &name, len, raw);
        let gz = path.extension().is_some_and(|e| e == "gz");
        let reader: Box<dyn BufRead> = if gz {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(counted)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, counted))
        };
        Ok(Lines {
            name,
            reader,
            line: 0,
            meter,
        })
    }

    /// The next non-blank line, or `None` at the end. A line that is not UTF-8 comes back as
    /// `Err(reason)` so the caller can report it and go on.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<std::result::Result<(), String>>> {
        loop {
            buf.clear();
            let n = self
                .reader
                .read_until(b'\n', buf)
                .map_err(|e| Error::io("reading", &self.name, e))?;
            if n == 0 {
                self.meter.finish();
                return Ok(None);
            }
            self.line += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(match std::str::from_utf8(buf) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("not UTF-8: {e}")),
            }));
        }
    }
}

#[cfg(feature = "admin")]
/// The fields of [`JsonItem`], [`JsonUser`] and [`JsonEvent`]: files may carry others (they
/// are ignored there), the admin socket refuses them (a test checks these against serde).
pub(crate) const ITEM_FIELDS: [&str; 8] = [
    "id",
    "tags",
    "title",
    "category",
    "price",
    "stock",
    "members_only",
    "created_at",
];
/// See [`ITEM_FIELDS`].
#[cfg(feature = "admin")]
pub(crate) const USER_FIELDS: [&str; 3] = ["id", "tags", "recent_items"];
/// See [`ITEM_FIELDS`].
#[cfg(feature = "admin")]
pub(crate) const EVENT_FIELDS: [&str; 12] = [
    "user", "item", "kind", "ts", "session", "qty", "price", "rating", "query", "slot", "strategy",
    "items",
];

#[cfg(feature = "admin")]
/// An item from its JSON form, with the checks an item line gets (the library's come when
/// it is stored).
pub(crate) fn item_from_json(j: JsonItem) -> std::result::Result<Item, String> {
    check_weights(&j.tags)?;
    Ok(j.into())
}

#[cfg(feature = "admin")]
/// A user from its JSON form; see [`item_from_json`].
pub(crate) fn user_from_json(j: JsonUser) -> std::result::Result<User, String> {
    check_weights(&j.tags)?;
    Ok(j.into())
}

/// Parse one line as `T`, with a reason fit for a bad-row report.
fn parse<T: serde::de::DeserializeOwned>(buf: &[u8]) -> std::result::Result<T, String> {
    serde_json::from_slice(buf).map_err(|e| format!("not a valid record: {e}"))
}

/// What a checked line turns into.
enum Record {
    Item(Item),
    User(User),
    Event(Event),
}

/// Check `line` as an item, a user and an event line (the fuzz target's entry).
#[cfg(feature = "fuzzing")]
pub(crate) fn check_line_every_kind(store: &Store, line: &[u8]) {
    for kind in [Kind::Items, Kind::Users, Kind::Events] {
        let _ = check(store, kind, line, None);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Items,
    Users,
    Events,
}

/// Parse and check one line of `kind` without storing anything. `known_items` holds ids
/// imported earlier in this run, for events and recent items in strict mode.
fn check(
    store: &Store,
    kind: Kind,
    buf: &[u8],
    known_items: Option<&HashSet<String>>,
) -> std::result::Result<Record, String> {
    let max_tags = store.config().max_tags_per_record;
    let snap = store.snapshot();
    let exists = |id: &str| {
        known_items.is_some_and(|k| k.contains(id))
            || snap.item_id(id).is_some_and(|i| snap.item_row(i).is_some())
    };
    let reason = |e: Error| match e {
        Error::InvalidRecord { reason, .. } | Error::InvalidEvent { reason, .. } => reason,
        other => other.to_string(),
    };
    match kind {
        Kind::Items => {
            let json = parse::<JsonItem>(buf)?;
            check_weights(&json.tags)?;
            let item: Item = json.into();
            validate_item(&item, max_tags).map_err(reason)?;
            Ok(Record::Item(item))
        }
        Kind::Users => {
            let json = parse::<JsonUser>(buf)?;
            check_weights(&json.tags)?;
            let user: User = json.into();
            validate_user(&user, max_tags).map_err(reason)?;
            if let Some(missing) = user.recent_items.iter().find(|i| !exists(i)) {
                return Err(format!(
                    "recent item `{}` is not in the store; import items first",
                    crate::model::display_id(missing)
                ));
            }
            Ok(Record::User(user))
        }
        Kind::Events => {
            let event = Event::try_from(parse::<JsonEvent>(buf)?)?;
            let latest = crate::event::latest_event_time(store.config().future_tolerance_secs);
            event.validate(0, latest).map_err(reason)?;
            if let Some(missing) = event.item.as_deref().filter(|i| !exists(i)) {
                return Err(format!(
                    "item `{}` is not in the store; import the items before the events that name them",
                    crate::model::display_id(missing)
                ));
            }
            Ok(Record::Event(event))
        }
    }
}

/// Import any of the three files into `store`: items, then users, then events. Items are
/// bulk-loaded in groups as large as the store ([`Store::bulk_load_items`]: each group is
/// atomic and leaves the store folded); a remainder under a tenth of the store goes through
/// the delta. Ends with the store in its fast state: what the delta holds is folded into a
/// new segment if it is a tenth of the store or more, and indexed otherwise.
pub fn import(store: &Store, files: &JsonlFiles, opts: &ImportOptions) -> Result<ImportSummary> {
    let started = std::time::Instant::now();
    let parts: Vec<(Kind, PathBuf)> = [
        (Kind::Items, &files.items),
        (Kind::Users, &files.users),
        (Kind::Events, &files.events),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.clone().map(|p| (k, p)))
    .collect();
    if parts.iter().filter(|(_, p)| p == Path::new("-")).count() > 1 {
        return Err(Error::InvalidQuery {
            reason: "only one of the items, users and events inputs can read stdin (`-`)".into(),
        });
    }
    let mut summary = ImportSummary::default();
    let mut spooled = None;
    if opts.strict {
        // Check everything before storing anything. Stdin can be read once only, so it is
        // spooled to a temporary file for the second pass.
        let mut known = HashSet::new();
        let mut checked = Vec::new();
        for (kind, path) in &parts {
            let stdin = path == Path::new("-");
            let path = if stdin {
                let tmp = spool_stdin()?;
                let p = tmp.0.clone();
                spooled = Some(tmp);
                p
            } else {
                path.clone()
            };
            let mut lines = Lines::open(
                &path,
                &ImportOptions {
                    progress: None,
                    ..opts.clone()
                },
            )?;
            if stdin {
                lines.name = "stdin".into();
            }
            let mut buf = Vec::new();
            while let Some(utf8) = lines.next_line(&mut buf)? {
                let rec = utf8.and_then(|()| check(store, *kind, &buf, Some(&known)));
                match rec {
                    Ok(Record::Item(i)) => {
                        known.insert(i.id);
                    }
                    Ok(_) => {}
                    Err(reason) => summary.bad_row(opts, &lines.name, lines.line, reason)?,
                }
            }
            checked.push((*kind, path));
        }
        for (kind, path) in checked {
            store_file(store, kind, &path, opts, &mut summary)?;
        }
    } else {
        for (kind, path) in &parts {
            store_file(store, *kind, path, opts, &mut summary)?;
        }
    }
    drop(spooled);
    settle(store)?;
    store.flush()?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Leave the store in its fast state: a bulk load (re-tagged records in the delta reaching a
/// tenth of the live items) is folded into a new segment, as the other importers do; a smaller
/// import has its re-tagged records indexed, which costs in proportion to what it wrote.
fn settle(store: &Store) -> Result<()> {
    let s = store.stats();
    if s.delta_records == 0 {
        return Ok(());
    }
    if s.delta_records.saturating_mul(10) >= s.items {
        store.rebuild()?;
    } else {
        store.index_delta()?;
    }
    Ok(())
}

/// Store a group of items: those whose names the store already knows through
/// `upsert_items` in batches (a re-run import would otherwise put a key per known item into
/// the bulk load's one batch, see [`crate::BULK_LOAD_MAX_UPDATES`]), then the new ones in one
/// bulk load. Every line of one name goes the same way, so the last line still wins.
fn load_items(store: &Store, items: Vec<crate::model::Item>) -> Result<()> {
    let snap = store.snapshot();
    let (known, new): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|i| snap.item_id(&i.id).is_some());
    drop(snap);
    for batch in known.chunks(BATCH) {
        store.upsert_items(batch)?;
    }
    store.bulk_load_items(&new)?;
    Ok(())
}

/// Items an import gathers before each bulk load: at least [`BULK_GROUP_MIN`], and as many as
/// the store already holds (up to [`BULK_GROUP_MAX`]), so that the segments the loads write add
/// up to about twice the final one, not a rewrite of the whole store per group.
fn bulk_group(store: &Store) -> usize {
    store.stats().items.clamp(BULK_GROUP_MIN, BULK_GROUP_MAX)
}

/// See [`bulk_group`].
const BULK_GROUP_MIN: usize = 1 << 18;
/// See [`bulk_group`]: about 1 GiB of items held in memory at most.
const BULK_GROUP_MAX: usize = 1 << 21;

/// A temporary copy of stdin, deleted when dropped.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_stdin() -> Result<Spooled> {
    let path = std::env::temp_dir().join(format!(
        "recostore-stdin-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let spooled = Spooled(path.clone());
    let mut f =
        std::fs::File::create(&path).map_err(|e| Error::io("spooling stdin to", &path, e))?;
    io::copy(&mut io::stdin().lock(), &mut f)
        .map_err(|e| Error::io("spooling stdin to", &path, e))?;
    Ok(spooled)
}

/// Stream one file into the store in batches, reporting and skipping bad lines.
fn store_file(
    store: &Store,
    kind: Kind,
    path: &Path,
    opts: &ImportOptions,
    summary: &mut ImportSummary,
) -> Result<()> {
    let mut lines = Lines::open(path, opts)?;
    let mut buf = Vec::new();
    let mut items = Vec::new();
    let mut users = Vec::new();
    let mut events = Vec::new();
    let mut tags: HashSet<String> = HashSet::new();
    let mut run = store.dedup_run();
    let mut group = bulk_group(store);
    let mut flush_events = |events: &mut Vec<Event>, summary: &mut ImportSummary| -> Result<()> {
        let (recorded, skipped) = store.record_events_once_paced(events, &mut run)?;
        summary.recorded += recorded as u64;
        summary.already_stored += skipped as u64;
        events.clear();
        Ok(())
    };
    while let Some(utf8) = lines.next_line(&mut buf)? {
        match utf8.and_then(|()| check(store, kind, &buf, None)) {
            Ok(Record::Item(i)) => {
                tags.extend(i.tags.iter().map(|t| t.0.clone()));
                items.push(i);
                if items.len() >= group {
                    summary.items += items.len();
                    load_items(store, std::mem::take(&mut items))?;
                    group = bulk_group(store);
                }
            }
            Ok(Record::User(u)) => {
                tags.extend(u.tags.iter().map(|t| t.0.clone()));
                users.push(u);
                if users.len() == BATCH {
                    store.upsert_users(&users)?;
                    summary.users += users.len();
                    users.clear();
                }
            }
            Ok(Record::Event(e)) => {
                summary.events += 1;
                events.push(e);
                if events.len() == EVENT_BATCH {
                    flush_events(&mut events, summary)?;
                }
            }
            Err(reason) => summary.bad_row(opts, &lines.name, lines.line, reason)?,
        }
    }
    // The rest: a bulk load when it is a tenth of the store or more; otherwise through the
    // delta, where `settle` indexes it (cheaper than writing the whole segment again).
    summary.items += items.len();
    if items.len().saturating_mul(10) >= store.stats().items && !items.is_empty() {
        load_items(store, items)?;
    } else {
        for group in items.chunks(BATCH) {
            store.upsert_items(group)?;
        }
    }
    store.upsert_users(&users)?;
    summary.users += users.len();
    flush_events(&mut events, summary)?;
    summary.tags += tags.len();
    Ok(())
}

#[cfg(all(test, feature = "admin"))]
mod tests {
    use super::*;

    fn keys(v: serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    fn sorted(f: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = f.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    /// The field lists the admin socket checks against are what serde writes for a record with
    /// every field set: a field added to a JSON form and not to its list fails here.
    #[test]
    fn field_lists_match_serde() {
        let item = JsonItem {
            id: "i".into(),
            tags: [("t".to_string(), 1.0)].into_iter().collect(),
            title: "t".into(),
            category: "c".into(),
            ..JsonItem::default()
        };
        assert_eq!(
            keys(serde_json::to_value(item).unwrap_or_default()),
            sorted(&ITEM_FIELDS)
        );
        let user = JsonUser {
            id: "u".into(),
            tags: BTreeMap::new(),
            recent_items: vec!["i".into()],
        };
        assert_eq!(
            keys(serde_json::to_value(user).unwrap_or_default()),
            sorted(&USER_FIELDS)
        );
        let event = JsonEvent {
            user: "u".into(),
            item: Some("i".into()),
            kind: "view".into(),
            ts: 1,
            session: Some("s".into()),
            qty: Some(1),
            price: Some(1.0),
            rating: Some(1.0),
            query: Some("q".into()),
            slot: Some("s".into()),
            strategy: Some("a".into()),
            items: Some(vec![]),
        };
        assert_eq!(
            keys(serde_json::to_value(event).unwrap_or_default()),
            sorted(&EVENT_FIELDS)
        );
    }
}
