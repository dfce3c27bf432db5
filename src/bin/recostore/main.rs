//! `recostore`: the command-line front end of the library.
//!
//! Every subcommand opens a store directory, does one job and exits. `--json` switches the
//! output to one machine-readable JSON document. Exit codes: 0 success, 1 a failure (the message
//! says what to do next), 2 a usage error (from clap), 3 the asked-for record does not exist.

/// mimalloc: the behaviour state is millions of small copy-on-write objects, where glibc's
/// malloc halved ingestion at 1M items (bench/RESULTS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod args;
mod config_file;
mod demo;
mod output;
mod plugin;
mod progress;
mod query;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use recostore::import::{self, ImportOptions};
use recostore::{Config, Error, Store};

pub(crate) const DEFAULT_DIR: &str = "./recostore-data";

#[derive(Parser)]
#[command(
    name = "recostore",
    version,
    about = "Embedded recommendation store: tag records on disk, recommendations in microseconds."
)]
#[command(
    long_about = "Embedded recommendation store: tag records on disk, recommendations in microseconds.\n\n\
Start with `recostore demo`, which builds a synthetic shop in ./recostore-data and shows recommendations.\n\
Set RUST_LOG=info (or debug) to see what the store does."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines (on stderr) as text, or as one JSON object per line for a log collector.
    /// Text carries colour codes only on a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run in namespace NAME: one of several shops kept in one store, each with its own
    /// records, events, plugins and figures. Absent or `default`: the store's own. Commands
    /// that write create the namespace at its first use; the others refuse an unknown one.
    /// With `serve`, the namespace of requests that name none; with `admin` and `query
    /// --socket`, the one the request names.
    #[arg(long, global = true, value_name = "NAME")]
    ns: Option<String>,
}

/// `--ns`, set once before any command runs.
static NAMESPACE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The namespace `--ns` names (`None`: the default one).
pub(crate) fn namespace() -> Option<&'static str> {
    NAMESPACE.get().and_then(|n| n.as_deref())
}

/// The store in `dir` (created if missing), or its namespace under `--ns` (created too).
pub(crate) fn open_with(dir: &std::path::Path, config: Config) -> recostore::Result<Store> {
    let store = Store::open_with(dir, config)?;
    match namespace() {
        None => Ok(store),
        Some(ns) => store.namespace(ns),
    }
}

/// The store in `dir`, which must exist, or its namespace under `--ns`, which must too.
pub(crate) fn open_existing_with(
    dir: &std::path::Path,
    config: Config,
) -> recostore::Result<Store> {
    let store = Store::open_existing_with(dir, config)?;
    match namespace() {
        None => Ok(store),
        Some(ns) => store.existing_namespace(ns),
    }
}

/// `Err` when `--ns` is given to a command that works on the whole store.
fn no_namespace(cmd: &str, why: &str) -> Result<(), String> {
    match namespace() {
        None | Some("default") => Ok(()),
        Some(ns) => Err(format!(
            "--ns {ns}: `{cmd}` takes no namespace ({why}); run it without --ns"
        )),
    }
}

/// [`open_existing_with`] with the default configuration.
pub(crate) fn open_existing(dir: &std::path::Path) -> recostore::Result<Store> {
    open_existing_with(dir, Config::default())
}

/// `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic shop, load it, and print example recommendations.
    Demo(demo::DemoArgs),
    /// Import data into a store: public data sets, or your own as JSON lines.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Export a store's items, users and events.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Run many queries of one scenario against a store in this process and report p50, p90,
    /// p99, max latency and queries/s: size hardware on your own data.
    Bench(BenchArgs),
    /// Ask a store for recommendations.
    #[command(subcommand)]
    Query(Box<query::QueryCmd>),
    /// Show one item or user as stored, with what behaviour says about it (statistics,
    /// derived tags, RFM and lifecycle).
    #[command(subcommand)]
    Get(GetCmd),
    /// Offline evaluation: hold out each user's latest interactions, replay the rest, and score
    /// a scenario's top k against what they did next (precision, recall, NDCG, MAP, coverage,
    /// novelty).
    Eval(EvalArgs),
    /// Test ranking plugins (WebAssembly, ABI v1 in plugins/ABI.md): run one on a JSON input,
    /// check one, list the features.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Serve a store's admin socket until SIGINT or SIGTERM (see PROTOCOL.md).
    Serve(admin::ServeArgs),
    /// Send one command to a running admin socket and print the answer.
    ///
    /// Exit codes: 0 ok, 1 the command failed, 2 bad command or arguments, 3 not found,
    /// 4 no server at the socket.
    Admin(admin::AdminArgs),
    /// Counts and sizes of a store.
    Stats(StoreArg),
    /// Delete users and everything they did ("forget me"), make their bytes leave every file
    /// of the store (a fold and a rewrite of sled's files), and print the receipt: what was
    /// taken back, from when no file held them, and the backups that still do. Check it with
    /// `recostore verify --forgotten USER`.
    Forget(ForgetArgs),
    /// Fold recent writes into a new segment now (every item is written again: seconds at a
    /// million items). With --save-delta, save the recent writes to the delta file instead,
    /// in proportion to what changed, so the next open reads them back in one piece.
    Rebuild(RebuildArgs),
    /// Check the whole store: every durable key, record and logged event against what
    /// queries serve, and the segment's checksum and store id. Exits 1 if anything is
    /// damaged. Writes wait while it runs.
    Verify(VerifyArgs),
    /// Rewrite the store's files with its live data only, dropping the bytes of deleted
    /// records that sled's files may still hold (run it after deleting users whose data must
    /// be gone) and the names of tags nothing uses, and packing item records into chunks of
    /// about a thousand, so that the store opens fast (a catalogue written record by record
    /// opens several times faster afterwards). The store must not be open elsewhere; needs
    /// room for one more copy. While a `recostore serve` holds it, `recostore admin reclaim`
    /// gives sled's space back without stopping (it keeps unused tag names and packs nothing).
    Compact(StoreArg),
    /// Publish the store once to an object store, as the next generation replicas follow
    /// (`recostore serve --follow URL`). URL: `file:///dir`, a path, or a cloud URL this build
    /// reaches. Only files not already there are uploaded; the manifest is committed last,
    /// with a conditional put. `recostore serve --publish URL` does this every few seconds.
    Publish(PublishArgs),
    /// Make a store in a new directory of the newest generation published at URL: the
    /// failover path (start the new leader from what the old one last published, then `serve
    /// --publish URL`; stop the old leader first) or a copy of production to look at. Every
    /// file is checked against the manifest, and the directory is filled only once the store
    /// in it has opened.
    Restore(RestoreArgs),
    /// Build a complete generation offline, from JSON lines (the formats of `import jsonl`,
    /// written by Spark, polars or any other tool), with no live store, and publish it to
    /// --out: replicas following that address switch to it. A build takes over the prefix
    /// from whatever published there before (the previous build), so run one build per
    /// prefix at a time.
    Build(BuildArgs),
}

#[derive(Args)]
struct PublishArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Where to publish.
    url: String,
    /// Publish even if another store published the prefix's newest generation, as its
    /// successor. Stop that leader first: from then on its publishes are refused with
    /// `ForeignLeader` (a store restored from its generations shares its id and needs no
    /// take-over).
    #[arg(long)]
    take_over: bool,
}

#[derive(Args)]
struct RestoreArgs {
    /// Where the generation is published (`s3://bucket/prefix`, `az://container/prefix`,
    /// `gs://bucket/prefix`, `file:///dir`, a path).
    url: String,
    /// The new store's directory (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BuildArgs {
    /// Item lines (FORMAT.md; `.gz` is decompressed).
    #[arg(long, value_name = "FILE")]
    items: PathBuf,
    /// User lines.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Event lines.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Where to publish the generation (`s3://bucket/prefix`, `file:///dir`, a path).
    #[arg(long, value_name = "URL")]
    out: String,
    /// Build in this directory and keep it (default: a fresh directory under the system's
    /// temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Stop at the first bad line, before anything is stored (default: skip and count).
    #[arg(long)]
    strict: bool,
    /// Print the import summary and the publish report as JSON, one object after the other.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RebuildArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Save the delta (the writes since the segment) to its file instead of folding it. The
    /// background work does this by itself while the delta holds less than
    /// `fold_fraction` of the catalogue.
    #[arg(long)]
    save_delta: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Only recompute the segment checksum (reads one file; the check before 0.2).
    #[arg(long, conflicts_with = "forgotten")]
    quick: bool,
    /// Instead, look for user ID's bytes in every file of the store (sled's files are
    /// rewritten with their live pairs first) and list where they remain. Exits 1 if any do.
    /// An item, a tag or another namespace's user of the same name is found too: the scan
    /// reads bytes, not records.
    #[arg(long, value_name = "ID")]
    forgotten: Option<String>,
}

#[derive(Args)]
struct ForgetArgs {
    /// The users to forget.
    #[arg(required = true)]
    users: Vec<String>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Args)]
struct StoreArg {
    /// Store directory.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Store directory (with events, e.g. from `recostore import`).
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// The scenario: for-user, or cart (the cart is the user's last five training items).
    #[arg(long, default_value = "for-user")]
    scenario: String,
    /// Recommendations per user.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Fraction of each user's distinct items held out, latest first.
    #[arg(long, default_value_t = 0.2)]
    holdout: f32,
    /// Also write the split (train.csv, test.csv, meta.json) here for bench/peers/implicit_peer.py.
    #[arg(long, value_name = "DIR")]
    write_split: Option<PathBuf>,
    /// Replay with this gap between implicit sessions, in seconds (Config::session_gap_secs).
    /// Try settings on your data before changing a shop's.
    #[arg(long, value_name = "SECS", default_value_t = Config::default().session_gap_secs)]
    session_gap_secs: u64,
    /// Replay keeping at most this many (basket, item) lines per co-occurrence index
    /// (Config::cooccurrence_lines); older baskets are dropped beyond it.
    #[arg(long, value_name = "N", default_value_t = Config::default().cooccurrence_lines)]
    cooccurrence_lines: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// Store directory (created if missing).
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Stop at the first bad row, before anything is stored (default: skip and count bad rows).
    #[arg(long)]
    strict: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ImportCmd {
    /// MovieLens (ml-latest-small layout): movies become items, ratings and tags user behaviour.
    Movielens {
        /// Folder with movies.csv, ratings.csv and tags.csv.
        path: PathBuf,
        #[command(flatten)]
        args: ImportArgs,
    },
    /// UCI Online Retail invoice lines (.csv or .csv.gz); cancellations and lines without a
    /// customer are dropped.
    Retail {
        /// The CSV file, optionally gzip-compressed.
        path: PathBuf,
        #[command(flatten)]
        args: ImportArgs,
    },
    /// Your own items, users and events as JSON lines (any subset; `-` is stdin, `.gz` is
    /// decompressed). The line formats are in FORMAT.md. Re-running a file upserts records
    /// and skips events already logged.
    Jsonl {
        /// Item lines: {"id", "tags": {"name": weight}, "title", "category", "price", "stock",
        /// "members_only", "created_at"}.
        #[arg(long, value_name = "FILE")]
        items: Option<PathBuf>,
        /// User lines: {"id", "tags": {...}, "recent_items": [...]}.
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
        /// Event lines: {"user", "item", "kind", "ts", "session", "qty", "price", "rating",
        /// "query"}.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        #[command(flatten)]
        args: ImportArgs,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// Write items.jsonl, users.jsonl and events.jsonl (the `import jsonl` format) from one
    /// consistent snapshot; safe while the store is being written to.
    Jsonl {
        /// Store directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Output directory (created if missing; the three files in it are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// Store directory (an existing store).
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Scenario: similar, together, viewed, cart, for-user, after-purchase, users-like,
    /// trending, search-rerank.
    #[arg(long)]
    scenario: String,
    /// Queries in all.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Threads issuing them [default: the CPU count].
    #[arg(long)]
    threads: Option<usize>,
    /// Results per query.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Seed for drawing query subjects from the store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Then run the same queries again while another thread writes this many item updates
    /// per second (80% stock and price, 20% one tag's weight), and print both. The bench
    /// writes to the store: every item it changed is written back as it was at the end,
    /// but a run killed midway leaves its changes, so use a copy (`recostore backup`) of a
    /// store that matters.
    #[arg(long, default_value_t = 0, value_name = "PER_SEC")]
    writes: u32,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum GetCmd {
    /// An item by id.
    Item {
        /// The item id.
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// A user by id.
    User {
        /// The user id.
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// `recostore build`: import the files into a fresh store, publish it, remove it.
fn build(b: BuildArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (to, prefix) = recostore::replica::object_store_from_url(&b.out)?;
    let (work, temporary) = match &b.work {
        Some(dir) => (dir.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir()
                .join(format!("recostore-build-{}-{nanos}", std::process::id()));
            (dir, true)
        }
    };
    if work.exists() && std::fs::read_dir(&work)?.next().is_some() {
        return Err(format!(
            "--work {}: not empty; a build starts from an empty store (give a new directory)",
            work.display()
        )
        .into());
    }
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::open_with(&work, with_bars(Config::default(), !b.json))?;
        let opts = ImportOptions {
            strict: b.strict,
            progress: progress::bars(!b.json),
        };
        let files = import::jsonl::JsonlFiles {
            items: Some(b.items.clone()),
            users: b.users.clone(),
            events: b.events.clone(),
        };
        let summary = import::jsonl::import(&store, &files, &opts)?;
        output::import_summary(&summary, b.json)?;
        let mut publish = recostore::PublishOptions::default();
        publish.take_over = true;
        let r = store.publish_with(&*to, &prefix, &publish)?;
        if b.json {
            output::json(&r)?;
        } else {
            println!(
                "built and published generation {} to {}: {} files, {} bytes; uploaded {} objects, {} bytes",
                r.generation, b.out, r.files, r.bytes_total, r.objects_uploaded, r.bytes_uploaded
            );
        }
        store.close()?;
        Ok(())
    })();
    if temporary {
        if let Err(e) = std::fs::remove_dir_all(&work) {
            eprintln!(
                "could not remove the build directory {}: {e}",
                work.display()
            );
        }
    }
    result
}

/// `config` with progress bars for its long rebuild work when `on`.
pub(crate) fn with_bars(config: Config, on: bool) -> Config {
    match progress::bars(on) {
        Some(p) => config.progress(p),
        None => config,
    }
}

fn import_file(
    kind: &str,
    path: &std::path::Path,
    a: &ImportArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = crate::open_with(&a.dir, with_bars(Config::default(), !a.json))?;
    let opts = ImportOptions {
        strict: a.strict,
        progress: progress::bars(!a.json),
    };
    let summary = if kind == "movielens" {
        import::movielens::import(&store, path, &opts)?
    } else {
        import::retail::import(&store, path, &opts)?
    };
    output::import_summary(&summary, a.json)?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo(a) => demo::run(a)?,
        Command::Import(ImportCmd::Jsonl {
            items,
            users,
            events,
            args: a,
        }) => {
            if items.is_none() && users.is_none() && events.is_none() {
                return Err("give at least one of --items, --users and --events".into());
            }
            let store = crate::open_with(&a.dir, with_bars(Config::default(), !a.json))?;
            let opts = ImportOptions {
                strict: a.strict,
                progress: progress::bars(!a.json),
            };
            let files = import::jsonl::JsonlFiles {
                items,
                users,
                events,
            };
            let summary = import::jsonl::import(&store, &files, &opts)?;
            output::import_summary(&summary, a.json)?;
        }
        Command::Import(ImportCmd::Movielens { path, args }) => {
            import_file("movielens", &path, &args)?
        }
        Command::Import(ImportCmd::Retail { path, args }) => import_file("retail", &path, &args)?,
        Command::Export(ExportCmd::Jsonl { dir, out, json }) => {
            let store = crate::open_existing(&dir)?;
            let s = store.export_jsonl(&out)?;
            if json {
                output::json(&s)?;
            } else {
                println!(
                    "exported {} items, {} users and {} events to {} in {:.1}s",
                    s.items,
                    s.users,
                    s.events,
                    s.dir.display(),
                    s.seconds
                );
                if s.pruned_events > 0 {
                    println!(
                        "{} older events were pruned from the event log before this export \
                         (event_log_retention_secs) and are not in events.jsonl",
                        s.pruned_events
                    );
                }
            }
        }
        Command::Bench(a) => {
            let store = crate::open_existing(&a.dir)?;
            let threads = a
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let r = recostore::sizing::run(
                &store,
                &recostore::sizing::SizingOptions {
                    scenario: a.scenario,
                    queries: a.queries,
                    threads,
                    k: a.k,
                    seed: a.seed,
                    writes_per_sec: a.writes,
                },
            )?;
            if a.json {
                output::json(&r)?;
            } else {
                println!(
                    "{} x{} on {} threads: p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  max {:.1} µs  {:.0} queries/s  ({} empty, {} errors)",
                    r.scenario, r.queries, r.threads, r.p50_us, r.p90_us, r.p99_us, r.max_us, r.qps, r.empty, r.errors
                );
                if let Some(e) = &r.first_error {
                    println!("  first error: {e}");
                }
                if let Some(w) = &r.under_writes {
                    println!(
                        "under {} writes/s ({} stock/price, {} tag changes written): p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  max {:.1} µs  {:.0} queries/s",
                        w.writes_per_sec, w.attribute_writes, w.tag_writes, w.p50_us, w.p90_us, w.p99_us, w.max_us, w.qps
                    );
                    println!(
                        "  p99 under writes / p99 without: {:.2}  (delta: {} re-indexed, {} attribute-only records; changed items written back)",
                        w.p99_us / r.p99_us.max(1e-9),
                        w.delta_records,
                        w.attribute_overlay
                    );
                    if let Some(e) = &w.first_error {
                        println!("  {} writes failed; first error: {e}", w.write_errors);
                    }
                }
            }
        }
        Command::Query(cmd) => return query::run(*cmd),
        Command::Plugin(cmd) => return plugin::run(cmd),
        Command::Serve(a) => return admin::serve(a),
        Command::Admin(a) => return admin::admin(a),
        Command::Get(GetCmd::Item { id, store: s }) => {
            let store = crate::open_existing(&s.dir)?;
            let Some(item) = store.get_item(&id) else {
                eprintln!("error: {}", Error::NotFound { what: "item", id });
                return Ok(ExitCode::from(3));
            };
            #[derive(serde::Serialize, Debug)]
            struct Doc {
                item: recostore::Item,
                activity: Option<recostore::ItemActivity>,
            }
            let activity = store.item_activity(&id);
            output::record(&Doc { item, activity }, s.json)?;
        }
        Command::Get(GetCmd::User { id, store: s }) => {
            let store = crate::open_existing(&s.dir)?;
            let Some(user) = store.get_user(&id) else {
                eprintln!("error: {}", Error::NotFound { what: "user", id });
                return Ok(ExitCode::from(3));
            };
            #[derive(serde::Serialize, Debug)]
            struct Doc {
                user: recostore::User,
                activity: Option<recostore::UserActivity>,
            }
            let activity = store.user_activity(&id);
            output::record(&Doc { user, activity }, s.json)?;
        }
        Command::Eval(a) => {
            let mut cfg = Config::default();
            cfg.session_gap_secs = a.session_gap_secs;
            cfg.cooccurrence_lines = a.cooccurrence_lines;
            let store = crate::open_existing_with(&a.dir, cfg)?;
            let report = recostore::eval::evaluate(
                &store,
                &recostore::eval::EvalOptions {
                    scenario: a.scenario,
                    k: a.k,
                    holdout: a.holdout,
                    write_split: a.write_split,
                },
            )?;
            if a.json {
                output::json(&report)?;
            } else {
                let r = &report;
                println!(
                    "{} @{} over {} users: precision {:.4}  recall {:.4}  ndcg {:.4}  map {:.4}  coverage {:.4}  novelty {:.2}  ({:.1}s replay, {:.1}s recommend)",
                    r.scenario, r.k, r.users, r.precision, r.recall, r.ndcg, r.map, r.coverage, r.novelty, r.seconds_replay, r.seconds_recommend
                );
            }
        }
        Command::Stats(s) => {
            let store = crate::open_existing(&s.dir)?;
            output::stats(&store.stats(), s.json)?;
        }
        Command::Rebuild(r) => {
            let s = &r.store;
            let store = crate::open_with(&s.dir, with_bars(Config::default(), !s.json))?;
            if r.save_delta {
                // Index every re-tagged row first, so the file holds them as runs (the open
                // that preceded this one left the indexing to a background thread).
                while store.index_delta()? > 0 {}
                let d = store.save_delta()?;
                if s.json {
                    output::json(&d)?;
                } else if d.written {
                    println!(
                        "delta of generation {} saved: {} records, {} runs of its index, {} bytes, {:.3} s",
                        d.generation, d.records, d.runs, d.bytes, d.seconds
                    );
                } else if d.records == 0 {
                    println!(
                        "nothing to save: the delta of generation {} is empty",
                        d.generation
                    );
                } else {
                    println!(
                        "nothing to save: the delta file of generation {} already holds every write ({} records)",
                        d.generation, d.records
                    );
                }
            } else {
                let f = store.rebuild()?;
                if s.json {
                    output::json(&f)?;
                } else {
                    println!(
                        "generation {} written ({} records folded, {} bytes)",
                        f.generation, f.folded, f.bytes
                    );
                }
            }
        }
        Command::Forget(f) => {
            let store = crate::open_existing(&f.store.dir)?;
            let ids: Vec<&str> = f.users.iter().map(String::as_str).collect();
            let r = store.forget_users(&ids)?;
            output::receipt(&r, f.store.json)?;
            if r.deleted.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Verify(v) => {
            let store = crate::open_existing(&v.store.dir)?;
            if let Some(id) = &v.forgotten {
                let r = store.verify_forgotten(id)?;
                output::forgotten(&r, v.store.json)?;
                return Ok(ExitCode::from(u8::from(!r.clean())));
            }
            if v.quick {
                store.verify()?;
                println!(
                    "segment generation {} verified (checksum only)",
                    store.stats().generation
                );
                return Ok(ExitCode::SUCCESS);
            }
            let r = store.verify_deep()?;
            if v.store.json {
                output::json(&r)?;
            } else {
                println!(
                    "{}: segment generation {}, {} keys, {} records, {} events read; sled files {} bytes for {} bytes of live data",
                    if r.healthy() { "healthy" } else { "DAMAGED" },
                    r.generation, r.keys, r.records, r.events, r.db_bytes, r.live_bytes
                );
                for p in &r.problems {
                    println!("  damage: {p}");
                }
                if r.damaged as usize > r.problems.len() {
                    println!("  ... and {} more", r.damaged as usize - r.problems.len());
                }
                for n in &r.notes {
                    println!("  note: {n}");
                }
            }
            if !r.healthy() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Publish(p) => {
            let s = &p.store;
            let (to, prefix) = recostore::replica::object_store_from_url(&p.url)?;
            let store = crate::open_existing(&s.dir)?;
            let mut opts = recostore::PublishOptions::default();
            opts.take_over = p.take_over;
            let r = store.publish_with(&*to, &prefix, &opts)?;
            if s.json {
                output::json(&r)?;
            } else {
                println!(
                    "published generation {} to {}: {} files, {} bytes; uploaded {} objects, {} bytes, in {:.2} s (writes waited {:.2} s for the copy)",
                    r.generation,
                    p.url,
                    r.files,
                    r.bytes_total,
                    r.objects_uploaded,
                    r.bytes_uploaded,
                    r.seconds,
                    r.copy_seconds
                );
            }
        }
        Command::Restore(r) => {
            no_namespace(
                "restore",
                "published generations hold the default namespace only",
            )?;
            let source = recostore::ReplicaSource::from_url(&r.url)?;
            let report = Store::restore_published(&source, &r.dir)?;
            if r.json {
                output::json(&report)?;
            } else {
                println!(
                    "restored generation {} of store {} from {} into {}: {} key-value pairs, {} bytes downloaded, in {:.2} s",
                    report.generation,
                    report.store,
                    r.url,
                    report.path.display(),
                    report.pairs,
                    report.bytes_downloaded,
                    report.seconds
                );
            }
        }
        Command::Build(b) => {
            no_namespace(
                "build",
                "published generations hold the default namespace only",
            )?;
            build(b)?
        }
        Command::Compact(s) => {
            no_namespace(
                "compact",
                "it rewrites the whole store, every namespace included",
            )?;
            let r = Store::compact(&s.dir, Config::default())?;
            if s.json {
                output::json(&r)?;
            } else {
                println!(
                    "compacted {}: {} keys, {} bytes before, {} after, {} unused tag names removed, {} replaced bulk-loaded records dropped, {} item records packed into chunks",
                    r.path.display(),
                    r.keys,
                    r.bytes_before,
                    r.bytes_after,
                    r.unused_tags_removed,
                    r.stale_chunk_records,
                    r.packed_records
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

type LogHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The live log filter, for the admin socket's `log.level`.
static LOG: std::sync::OnceLock<LogHandle> = std::sync::OnceLock::new();

/// A hook that swaps the process's log filter, if logging was set up.
pub(crate) fn log_level_hook() -> Option<recostore::admin::LogLevelHook> {
    let handle = LOG.get()?.clone();
    Some(std::sync::Arc::new(move |spec: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// Die quietly on a closed pipe (`recostore stats | head`) like every Unix tool, instead of
/// panicking in `println!`. Rust starts programs with SIGPIPE ignored.
fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists, so nothing races
    // on the process's signal dispositions; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    use tracing_subscriber::prelude::*;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let cli = Cli::parse();
    let _ = NAMESPACE.set(cli.ns.clone());
    let json = cli.log_format == LogFormat::Json;
    // No colour codes in a log file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(filter)
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
        }))
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
        }))
        .init();
    let _ = LOG.set(handle);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.downcast_ref::<recostore::Error>().and_then(flag_hint) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The command-line form of what a library error asks for (the library names no flags).
fn flag_hint(e: &recostore::Error) -> Option<String> {
    match e {
        recostore::Error::BadInput { .. } => {
            Some("run without --strict to skip bad rows and count them in the summary".into())
        }
        // `recostore serve` puts its socket in the store directory by default: when it is there,
        // the way in is through it.
        recostore::Error::Locked { dir } if dir.join("admin.sock").exists() => Some(format!(
            "a `recostore serve` holds this store; send the command through its socket: \
             recostore admin --socket {} <COMMAND> (`recostore admin --socket {} help` lists them)",
            dir.join("admin.sock").display(),
            dir.join("admin.sock").display()
        )),
        recostore::Error::Locked { .. } => Some(
            "another recostore (or the app) has this --dir open; stop it, use the socket of the \
             `recostore serve` that holds it (`recostore admin --socket PATH`), or pick another --dir"
                .into(),
        ),
        recostore::Error::NoStore { .. } => Some(
            "check --dir (the default is ./recostore-data); `recostore import` or `recostore demo` \
             creates a store"
                .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// clap checks the command definitions (unique argument names, ...) only when a command is
    /// built; this builds them all, so a clash fails here rather than on a user's machine.
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
