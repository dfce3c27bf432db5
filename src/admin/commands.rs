//! What each admin command does: arguments in, a JSON result out.

use std::path::PathBuf;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::protocol::{Code, Request, Response};
use super::LogLevelHook;
use crate::error::Error;
use crate::plugin::Variant;
use crate::scenario::{Answer, Ask};
use crate::store::Store;

/// Every command, with a one-line summary (`help` lists them; PROTOCOL.md has examples).
pub const COMMANDS: &[(&str, &str)] = &[
    ("ping", "liveness: {\"pong\": true}"),
    ("help", "this list"),
    ("stats", "records, events, segment, delta, queries and latency, plugin faults, memory; {\"format\": \"prometheus\"} for the metrics text"),
    ("item.get", "one item with its statistics: {\"id\"}"),
    ("user.get", "one user with derived tags, RFM and lifecycle: {\"id\"}"),
    ("query", "any scenario: the args are an Ask ({\"scenario\": \"for-user\", \"user\", \"k\", \"filter\", ...})"),
    ("users.like", "users with the most similar tags: {\"user\", \"k\"}"),
    ("segment.users", "users in an RFM or lifecycle segment: {\"name\"}"),
    ("plugin.list", "loaded plugins with versions, faults and slots"),
    ("plugin.load", "load or replace a plugin: {\"name\", \"path\", \"config\"?}"),
    ("plugin.swap", "replace a loaded plugin: {\"name\", \"path\", \"config\"?}"),
    ("plugin.promote", "swap in a new version under guardrails that roll it back on their own: {\"name\", \"path\", \"config\"?, \"guardrails\"?: {\"window_secs\", \"min_calls\", \"max_fault_rate_increase\", \"max_p99_ratio\", \"min_impressions\", \"alpha\"}}"),
    ("plugin.rollback", "serve the previous version: {\"name\"}"),
    ("plugin.unload", "remove a plugin: {\"name\"}"),
    ("plugin.enable", "serve a disabled plugin again: {\"name\"}"),
    ("plugin.replay", "would a module have done better on this store's history? {\"path\", \"config\"?, \"scenario\"?, \"k\"?, \"since\"? | \"last_secs\"?, \"against\"?, \"resamples\"?}"),
    ("slot.route", "route a slot: {\"slot\", \"variants\": [{\"strategy\", \"weight\", \"mode\"?: \"serve\" | \"shadow\" | \"interleave\", \"sample\"?}]}"),
    ("slot.remove", "stop routing a slot: {\"slot\"}"),
    ("slot.stats", "A/B, interleaving and shadow figures per variant: {\"slot\"?}"),
    ("events.record", "record a batch of events, all or none: {\"events\": [event lines as in FORMAT.md]}"),
    ("item.upsert", "insert or replace items, all or none: {\"items\": [item lines as in FORMAT.md]}"),
    ("user.upsert", "insert or replace users, all or none: {\"users\": [user lines as in FORMAT.md]}"),
    ("item.delete", "delete items: {\"ids\": [...]}"),
    ("user.delete", "delete users and everything they did (\"forget me\"), make their bytes leave the store's files, and return the receipt: {\"ids\": [...]}"),
    ("segment.rebuild", "fold recent writes into a new segment now"),
    (
        "segment.save_delta",
        "save recent writes to the delta file (in proportion to them, not to the catalogue)",
    ),
    ("flush", "make every acknowledged write durable now"),
    ("checkpoint", "write the behaviour state the event journal holds, so the next open replays nothing"),
    ("events.prune", "take events older than the retention out of the event log (state keeps them): {\"keep_secs\"?}"),
    ("reclaim", "give back the space sled holds for replaced values, while serving (writes wait for the copy)"),
    ("backup", "consistent copy of the store while serving: {\"path\"}"),
    ("export", "items, users and events as JSON lines into a directory: {\"path\"}"),
    ("log.level", "change log verbosity live: {\"filter\": \"info,recostore=debug\"}"),
    ("ns.list", "the store's namespaces besides `default` (every command takes a top-level \"ns\" to run in one)"),
];

/// What the handlers share.
pub(crate) struct Ctx {
    /// The store served, or the first generation of the replica when `replica` is set.
    pub store: Store,
    /// Set when serving a replica: each request asks it for the generation it serves now.
    #[cfg(feature = "replication")]
    pub replica: Option<crate::Replica>,
    pub started: Instant,
    pub log_level: Option<LogLevelHook>,
    /// The namespace of requests that name none ([`super::AdminOptions::namespace`]).
    pub namespace: Option<String>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Ctx {
    /// The store a request runs on: a replica's current generation, or the store served.
    pub(crate) fn store(&self) -> Store {
        #[cfg(feature = "replication")]
        if let Some(r) = &self.replica {
            return r.store();
        }
        self.store.clone()
    }

    /// The metrics text: the replica's when serving one.
    pub(crate) fn metrics_text(&self) -> String {
        #[cfg(feature = "replication")]
        if let Some(r) = &self.replica {
            return super::prometheus::replica_text(r);
        }
        super::prometheus::text(&self.store)
    }
}

/// A handler's failure: the code and message of the error response.
type Failure = (Code, String);

/// A command's arguments: unknown fields are refused with the closest valid one suggested,
/// and a wrong type names its field (`id: invalid type: integer 17850, expected a string`).
fn args<T: DeserializeOwned>(v: &Value) -> Result<T, Failure> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    serde_path_to_error::deserialize(&v).map_err(|e| {
        (
            Code::BadArgs,
            format!("bad arguments: {}", crate::fields::explain(&e.to_string())),
        )
    })
}

/// A store error as a response: not-found errors get their own code.
fn failed(e: Error) -> Failure {
    let code = match e {
        Error::NotFound { .. } | Error::PluginNotFound { .. } => Code::NotFound,
        Error::InvalidQuery { .. } | Error::Namespace { .. } => Code::BadArgs,
        Error::QuotaExceeded { .. } => Code::Quota,
        Error::ReadOnlyReplica { .. } => Code::ReadOnly,
        _ => Code::Failed,
    };
    (code, e.to_string())
}

/// `v` as a JSON value whose numbers print as they would if `v` were printed directly. Scores are `f32`,
/// and `serde_json::to_value` widens them to `f64` (0.85714287 becomes 0.8571428656578064);
/// going through the text keeps the shortest form, so the socket and the CLI's `--json` print
/// the same digits.
fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, Failure> {
    let bad = |e: serde_json::Error| (Code::Failed, format!("result not serialisable: {e}"));
    serde_json::to_string(v)
        .and_then(|text| serde_json::from_str(&text))
        .map_err(bad)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Load {
    name: String,
    path: PathBuf,
    #[serde(default)]
    config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    name: String,
    path: PathBuf,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    guardrails: crate::plugin::Guardrails,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    path: PathBuf,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    last_secs: Option<u64>,
    #[serde(default)]
    against: Option<String>,
    #[serde(default)]
    resamples: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    slot: String,
    variants: Vec<RouteVariant>,
}

/// A variant as `slot.route` takes it: `weight` may be left out only where it has no meaning
/// (a shadow or interleaved variant), so a serving variant that forgot it is an error, not a
/// variant that serves no one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteVariant {
    strategy: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    mode: crate::plugin::Mode,
    #[serde(default)]
    sample: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotArg {
    #[serde(default)]
    slot: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersLike {
    user: String,
    #[serde(default = "ten")]
    k: usize,
}

fn ten() -> usize {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepArg {
    #[serde(default)]
    keep_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArg {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    filter: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsArg {
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    events: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Items {
    items: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Users {
    users: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ids {
    ids: Vec<String>,
}

/// Each of `list` as a `J` (refusing fields not in `fields`) turned into a record by `make`;
/// the first bad one is the error, named by its position, and nothing is stored.
fn records<J: DeserializeOwned, T>(
    what: &str,
    list: &[Value],
    fields: &[&str],
    make: impl Fn(J) -> std::result::Result<T, String>,
) -> Result<Vec<T>, Failure> {
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let bad = |why: String| {
                (
                    Code::BadArgs,
                    format!("{what} {i} (0-based): {why}; nothing was stored"),
                )
            };
            if !v.is_object() {
                return Err(bad(format!("expected a JSON object, got {v}")));
            }
            crate::fields::check_keys(what, v, fields).map_err(bad)?;
            let j: J = serde_path_to_error::deserialize(v)
                .map_err(|e| bad(crate::fields::explain(&e.to_string())))?;
            make(j).map_err(bad)
        })
        .collect()
}

/// A write the store refused: bad input is the caller's to fix (`bad_args`; the message says
/// nothing of the batch was stored), anything else is the store's (`failed`).
fn refused(e: Error) -> Failure {
    let code = match e {
        Error::InvalidRecord { .. } | Error::InvalidEvent { .. } => Code::BadArgs,
        Error::ReadOnlyReplica { .. } => Code::ReadOnly,
        Error::QuotaExceeded { .. } => Code::Quota,
        _ => Code::Failed,
    };
    (code, e.to_string())
}

fn write_command(store: &Store, cmd: &str, a: &Value) -> Result<Value, Failure> {
    use crate::import::jsonl::{
        item_from_json, user_from_json, JsonEvent, JsonItem, JsonUser, EVENT_FIELDS, ITEM_FIELDS,
        USER_FIELDS,
    };
    match cmd {
        "events.record" => {
            let Events { events } = args(a)?;
            let events = records("event", &events, &EVENT_FIELDS, |j: JsonEvent| {
                crate::Event::try_from(j)
            })?;
            let n = store.record_events(&events).map_err(refused)?;
            Ok(json!({"recorded": n}))
        }
        "item.upsert" => {
            let Items { items } = args(a)?;
            let items = records("item", &items, &ITEM_FIELDS, |j: JsonItem| {
                item_from_json(j)
            })?;
            store.upsert_items(&items).map_err(refused)?;
            let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
            Ok(json!({"upserted": items.len(), "ids": ids}))
        }
        "user.upsert" => {
            let Users { users } = args(a)?;
            let users = records("user", &users, &USER_FIELDS, |j: JsonUser| {
                user_from_json(j)
            })?;
            store.upsert_users(&users).map_err(refused)?;
            let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
            Ok(json!({"upserted": users.len(), "ids": ids}))
        }
        "item.delete" => {
            let Ids { ids } = args(a)?;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let n = store.delete_items(&refs).map_err(refused)?;
            Ok(json!({"deleted": n, "not_found": ids.len() - n}))
        }
        "user.delete" => {
            // Forgotten with a receipt: a fold and a reclaim, so the connection waits
            // (seconds on a large store).
            let Ids { ids } = args(a)?;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let receipt = store.forget_users(&refs).map_err(refused)?;
            Ok(json!({
                "deleted": receipt.deleted.len(),
                "not_found": receipt.not_found.len(),
                "receipt": to_value(&receipt)?,
            }))
        }
        other => Err((Code::UnknownCommand, format!("unknown command `{other}`"))),
    }
}

/// The module at `path`, read by the server: a regular file within the size cap.
fn read_module_arg(path: &std::path::Path, max: usize) -> Result<Vec<u8>, Failure> {
    crate::plugin::read_module(path, max).map_err(|e| {
        (
            Code::BadArgs,
            format!("{e} (the path is read by the server, not by this client)"),
        )
    })
}

fn load_plugin(store: &Store, a: Load, swap: bool) -> Result<Value, Failure> {
    let max = store.plugins().limits().max_module_bytes;
    let wasm = read_module_arg(&a.path, max)?;
    let config = config_bytes(a.config.as_ref());
    let plugins = store.plugins();
    if swap && plugins.info(&a.name).is_err() {
        return Err((
            Code::NotFound,
            format!(
                "no plugin `{}` to swap; use plugin.load for a new one",
                a.name
            ),
        ));
    }
    let info = plugins
        .load_with_config(&a.name, &wasm, &config)
        .map_err(failed)?;
    to_value(&info)
}

/// Replay a module against the serving store's history. It reads a snapshot and a log scan,
/// so writes and queries go on; the connection waits for the answer (seconds on a large log).
fn replay(store: &Store, a: Replay) -> Result<Value, Failure> {
    use crate::eval::replay::{ReplayOptions, Split};
    // One replay at a time per process: each holds the whole event log and a wasm engine.
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.store(false, std::sync::atomic::Ordering::Release);
        }
    }
    if RUNNING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return Err((
            Code::Failed,
            "a replay is already running on this server; try again when it answers".to_string(),
        ));
    }
    let _running = Running;
    let max = store.plugins().limits().max_module_bytes;
    let wasm = read_module_arg(&a.path, max)?;
    let config = config_bytes(a.config.as_ref());
    let defaults = ReplayOptions::default();
    let split = match (a.since, a.last_secs) {
        (Some(_), Some(_)) => {
            return Err((
                Code::BadArgs,
                "give `since` or `last_secs`, not both".to_string(),
            ))
        }
        (Some(t), None) => Split::At(t),
        (None, Some(s)) => Split::Last(s),
        (None, None) => Split::default(),
    };
    let opts = ReplayOptions {
        scenario: a.scenario.unwrap_or(defaults.scenario),
        k: a.k.unwrap_or(defaults.k),
        split,
        against: a.against.unwrap_or(defaults.against),
        resamples: a.resamples.unwrap_or(defaults.resamples),
        progress: None,
    };
    let report = crate::eval::replay::replay(store, &wasm, &config, &opts).map_err(failed)?;
    to_value(&report)
}

/// A plugin config as the module's init reads it: a JSON string as its text, anything else
/// as JSON.
fn config_bytes(config: Option<&Value>) -> Vec<u8> {
    match config {
        None => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => v.to_string().into_bytes(),
    }
}

fn stats(ctx: &Ctx, store: &Store) -> Result<Value, Failure> {
    let s = store.stats();
    let plugins = store.plugins().list();
    let faults: u64 = plugins.iter().map(|p| p.faults.total()).sum();
    #[cfg(feature = "replication")]
    let replica = match &ctx.replica {
        Some(r) => to_value(&r.status())?,
        None => Value::Null,
    };
    #[cfg(not(feature = "replication"))]
    let replica = Value::Null;
    Ok(json!({
        "namespace": store.namespace_name().unwrap_or(crate::namespace::DEFAULT),
        "replica": replica,
        "items": s.items,
        "users": s.users,
        "tags": s.tags,
        "events": s.events,
        "clock": s.clock,
        "segment": {"generation": s.generation, "bytes": s.segment_bytes},
        "delta_records": s.delta_records,
        "attribute_overlay": s.attribute_overlay,
        "delta_index": {"runs": s.delta_runs, "unindexed": s.delta_unindexed, "bytes": s.delta_index_bytes},
        "cooccurrence": {"bought_lines": s.bought_lines, "viewed_lines": s.viewed_lines, "approx_bytes": s.cooccurrence_bytes},
        "queries": to_value(&store.latency_stats())?,
        "plugins": {
            "loaded": plugins.len(),
            "disabled": plugins.iter().filter(|p| p.disabled.is_some()).count(),
            "faults": faults,
        },
        "memory": {"resident_bytes": crate::metrics::resident_bytes()},
        "connections": ctx.connections.load(std::sync::atomic::Ordering::Relaxed),
        "uptime_secs": ctx.started.elapsed().as_secs(),
    }))
}

/// Commands that create the namespace they name at its first use; the others refuse an
/// unknown one, so a mistyped name reads nothing rather than making an empty namespace.
const CREATING: &[&str] = &[
    "item.upsert",
    "user.upsert",
    "events.record",
    "plugin.load",
    "plugin.promote",
    "slot.route",
];

/// The store a request runs on: its namespace's, when it names one.
fn store_for(ctx: &Ctx, req: &Request) -> Result<Store, Failure> {
    let store = ctx.store();
    match req.ns.as_ref().or(ctx.namespace.as_ref()) {
        None => Ok(store),
        Some(ns) if CREATING.contains(&req.cmd.as_str()) => store.namespace(ns).map_err(failed),
        Some(ns) => store.existing_namespace(ns).map_err(failed),
    }
}

fn run(ctx: &Ctx, store: &Store, cmd: &str, a: &Value) -> Result<Value, Failure> {
    match cmd {
        "ping" => Ok(json!({"pong": true, "version": env!("CARGO_PKG_VERSION")})),
        "ns.list" => Ok(json!({"namespaces": store.namespaces().map_err(failed)?})),
        "help" => Ok(COMMANDS
            .iter()
            .map(|(c, d)| json!({"cmd": c, "about": d}))
            .collect()),
        "stats" => {
            let StatsArg { format } = args(a)?;
            match format.as_deref() {
                None | Some("json") => stats(ctx, store),
                Some("prometheus") => Ok(json!({"format": "prometheus", "text": match store.namespace_name() {
                    None => ctx.metrics_text(),
                    Some(_) => super::prometheus::text(store),
                }})),
                Some(other) => Err((
                    Code::BadArgs,
                    format!("bad arguments: format `{other}`: the formats are `json` (the default) and `prometheus`"),
                )),
            }
        }
        "item.get" => {
            let Id { id } = args(a)?;
            let item = store.get_item(&id).ok_or_else(|| {
                failed(Error::NotFound {
                    what: "item",
                    id: id.clone(),
                })
            })?;
            Ok(json!({"item": to_value(&item)?, "activity": to_value(&store.item_activity(&id))?}))
        }
        "user.get" => {
            let Id { id } = args(a)?;
            let user = store.get_user(&id).ok_or_else(|| {
                failed(Error::NotFound {
                    what: "user",
                    id: id.clone(),
                })
            })?;
            Ok(json!({"user": to_value(&user)?, "activity": to_value(&store.user_activity(&id))?}))
        }
        "query" => {
            let ask = Ask::from_json(if a.is_null() { json!({}) } else { a.clone() })
                .map_err(|e| (Code::BadArgs, e.to_string()))?;
            let started = Instant::now();
            let served = store.serve(&ask).map_err(failed)?;
            to_value(&served.answer(ask.scenario.name(), started.elapsed()))
        }
        "users.like" => {
            let u: UsersLike = args(a)?;
            let started = Instant::now();
            let users = store.users_like(&u.user, u.k).map_err(failed)?;
            to_value(&Answer::builtin("users-like", &users, started.elapsed()))
        }
        "segment.users" => {
            let Name { name } = args(a)?;
            to_value(&store.segment_users(&name).map_err(failed)?)
        }
        "plugin.list" => to_value(&store.plugins().list()),
        "plugin.load" => load_plugin(store, args(a)?, false),
        "plugin.swap" => load_plugin(store, args(a)?, true),
        "plugin.replay" => replay(store, args(a)?),
        "plugin.promote" => {
            let p: Promote = args(a)?;
            p.guardrails
                .check()
                .map_err(|reason| (Code::BadArgs, format!("guardrails: {reason}")))?;
            let max = store.plugins().limits().max_module_bytes;
            let wasm = read_module_arg(&p.path, max)?;
            let config = config_bytes(p.config.as_ref());
            let info = store
                .plugins()
                .promote(&p.name, &wasm, &config, p.guardrails)
                .map_err(failed)?;
            to_value(&info)
        }
        "plugin.rollback" => {
            let Name { name } = args(a)?;
            to_value(&store.plugins().rollback(&name).map_err(failed)?)
        }
        "plugin.unload" => {
            let Name { name } = args(a)?;
            store.plugins().unload(&name).map_err(failed)?;
            Ok(json!({"unloaded": name}))
        }
        "plugin.enable" => {
            let Name { name } = args(a)?;
            to_value(&store.plugins().enable(&name).map_err(failed)?)
        }
        "slot.route" => {
            let r: Route = args(a)?;
            let mut variants = Vec::with_capacity(r.variants.len());
            for v in r.variants {
                if v.mode == crate::plugin::Mode::Serve && v.weight.is_none() {
                    return Err((
                        Code::BadArgs,
                        format!(
                            "bad arguments: variant `{}` serves and needs a `weight` (its share \
                             of users); a shadow or interleaved variant says so with `mode`",
                            v.strategy
                        ),
                    ));
                }
                variants.push(Variant {
                    mode: v.mode,
                    sample: v.sample,
                    ..Variant::new(v.strategy, v.weight.unwrap_or(0))
                });
            }
            store
                .plugins()
                .set_slot(&r.slot, variants)
                .map_err(failed)?;
            Ok(
                json!({"slot": r.slot, "variants": to_value(&store.plugins().slots().into_iter().find(|(s, _)| *s == r.slot).map(|(_, v)| v))?}),
            )
        }
        "slot.remove" => {
            let SlotArg { slot } = args(a)?;
            let slot = slot.ok_or((
                Code::BadArgs,
                "bad arguments: missing field `slot`".to_string(),
            ))?;
            store.plugins().remove_slot(&slot).map_err(failed)?;
            Ok(json!({"removed": slot}))
        }
        "slot.stats" => {
            let SlotArg { slot } = args(a)?;
            to_value(&store.plugins().variant_stats(slot.as_deref()))
        }
        "events.record" | "item.upsert" | "user.upsert" | "item.delete" | "user.delete" => {
            write_command(store, cmd, a)
        }
        "segment.rebuild" => to_value(&store.rebuild().map_err(failed)?),
        "segment.save_delta" => to_value(&store.save_delta().map_err(failed)?),
        "flush" => {
            store.flush().map_err(failed)?;
            Ok(json!({"flushed": true}))
        }
        "checkpoint" => {
            store.checkpoint().map_err(failed)?;
            Ok(json!({"checkpointed": true}))
        }
        "events.prune" => {
            let KeepArg { keep_secs } = args(a)?;
            let keep = keep_secs
                .or(store.config().event_log_retention_secs)
                .ok_or((
                    Code::BadArgs,
                    "this store keeps every event (no event_log_retention_secs in its \
                     configuration); give {\"keep_secs\": N} to prune once"
                        .to_string(),
                ))?;
            to_value(&store.prune_event_log(keep).map_err(failed)?)
        }
        "reclaim" => to_value(&store.reclaim_space().map_err(failed)?),
        "backup" => {
            let PathArg { path } = args(a)?;
            to_value(&store.backup(path).map_err(failed)?)
        }
        "export" => {
            let PathArg { path } = args(a)?;
            to_value(&store.export_jsonl(path).map_err(failed)?)
        }
        "log.level" => {
            let Filter { filter } = args(a)?;
            let hook = ctx.log_level.as_ref().ok_or((
                Code::Failed,
                "this process installed no log-level hook (AdminOptions::log_level); \
                 `recostore serve` has one"
                    .to_string(),
            ))?;
            hook(&filter).map_err(|e| (Code::BadArgs, format!("bad filter `{filter}`: {e}")))?;
            tracing::info!(filter, "log level changed over the admin socket");
            Ok(json!({"filter": filter}))
        }
        other => {
            let hint = crate::fields::closest(other, COMMANDS.iter().map(|(c, _)| *c))
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            Err((
                Code::UnknownCommand,
                format!("unknown command `{other}`; {hint}`help` lists the commands"),
            ))
        }
    }
}

/// Answer one parsed request.
pub(crate) fn handle(ctx: &Ctx, req: Request) -> Response {
    let started = Instant::now();
    let out = store_for(ctx, &req).and_then(|store| run(ctx, &store, &req.cmd, &req.args));
    tracing::debug!(cmd = %req.cmd, ok = out.is_ok(), micros = crate::narrow::u64_from(started.elapsed().as_micros()), "admin request");
    match out {
        Ok(v) => Response::ok(req.id, v),
        Err((code, msg)) => Response::err(req.id, code, msg),
    }
}
