//! `recostore`: the command-line front end of the library.
//!
//! Every subcommand opens a store directory, does one job and exits. `--json` switches the
//! output to one machine-readable JSON document. Exit codes: 0 success, 1 a failure (the message
//! says what to do next), 2 a usage error (from clap), 3 the asked-for record does not exist.

mod admin;
mod demo;
mod output;
mod plugin;
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
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic shop, load it, and print example recommendations.
    Demo(demo::DemoArgs),
    /// Import a public data set into a store.
    #[command(subcommand)]
    Import(ImportCmd),
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
    /// Fold recent writes into a new segment now.
    Rebuild(StoreArg),
    /// Recompute the segment checksum (reads the whole file).
    Verify(StoreArg),
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

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo(a) => demo::run(a)?,
        Command::Import(cmd) => {
            let (kind, path, a) = match cmd {
                ImportCmd::Movielens { path, args } => ("movielens", path, args),
                ImportCmd::Retail { path, args } => ("retail", path, args),
            };
            let store = Store::open_with(&a.dir, Config::default().show_progress(!a.json))?;
            let opts = ImportOptions {
                strict: a.strict,
                progress: !a.json,
            };
            let summary = if kind == "movielens" {
                import::movielens::import(&store, &path, &opts)?
            } else {
                import::retail::import(&store, &path, &opts)?
            };
            output::import_summary(&summary, a.json)?;
        }
        Command::Query(cmd) => return query::run(*cmd),
        Command::Plugin(cmd) => return plugin::run(cmd),
        Command::Serve(a) => return admin::serve(a),
        Command::Admin(a) => return admin::admin(a),
        Command::Get(GetCmd::Item { id, store: s }) => {
            let store = Store::open(&s.dir)?;
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
            let store = Store::open(&s.dir)?;
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
            let store = Store::open(&a.dir)?;
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
            let store = Store::open(&s.dir)?;
            output::stats(&store.stats(), s.json)?;
        }
        Command::Rebuild(s) => {
            let store = Store::open_with(&s.dir, Config::default().show_progress(true))?;
            let r = store.rebuild()?;
            println!(
                "generation {} written ({} records folded, {} bytes)",
                r.generation, r.folded, r.bytes
            );
        }
        Command::Verify(s) => {
            let store = Store::open(&s.dir)?;
            store.verify()?;
            println!("segment generation {} verified", store.stats().generation);
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

fn main() -> ExitCode {
    use tracing_subscriber::prelude::*;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let _ = LOG.set(handle);
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
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
