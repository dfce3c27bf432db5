//! `recostore query <scenario>`: the shop's scenarios (together, for-user, cart, ...) and
//! `query users-like` / `query segment` from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use recostore::Error;
use recostore::USER_SEGMENTS as SEGMENTS;
use recostore::{Ask, Scenario};
use serde::Serialize;

use crate::args::FilterOpts;
use crate::output;

#[derive(Subcommand)]
pub enum ScenarioCmd {
    /// Items that could replace ITEM, for its product page: a strong tag match, viewed in the
    /// same sessions, rarely bought in the same baskets. Each says its evidence.
    Substitutes {
        /// The item on the page.
        item: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Items that complete ITEM, for the cart and the receipt: bought in the same baskets,
    /// unlike it in tags. Each says its evidence.
    Complements {
        /// The item.
        item: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Items bought in the same basket as ITEM, with exact counts ("457×, lift 6.3").
    Together {
        /// The item on the page.
        item: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Items viewed in the same session as ITEM (views, clicks, carts, saves, ratings and
    /// reviews; a purchase alone is not a view).
    Viewed {
        /// The item on the page.
        item: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// The home page for USER: co-occurrence with their recent items, their tag profile and
    /// what is trending, blended. A USER the store has not seen yet (or with no history) gets
    /// their explicit tags and what is popular, each result saying "no history yet".
    ForUser {
        /// The user.
        #[arg(value_name = "USER")]
        subject: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Users whose tag profiles are most like USER's.
    UsersLike {
        /// The user.
        user: String,
        /// How many users.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Store directory.
        #[arg(long, default_value = crate::DEFAULT_DIR)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cross-sell for a whole basket (the basket's items are never returned). With no items
    /// it seeds from --user's history, or (a new visitor) shows what is popular.
    Cart {
        /// Item ids in the cart (none: an empty cart).
        items: Vec<String>,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Follow-ups to USER's last order, excluding everything they bought.
    AfterPurchase {
        /// The user.
        #[arg(value_name = "USER")]
        subject: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Re-rank a search result list for the query keywords (and --user).
    SearchRerank {
        /// The result list, comma-separated, in the search engine's order.
        #[arg(long, value_delimiter = ',', required = true)]
        items: Vec<String>,
        /// The search query; its words are the keywords.
        #[arg(long, short = 'q')]
        query: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Time-decayed popularity (use --category for "trending in kitchen").
    Trending {
        #[command(flatten)]
        opts: AskOpts,
    },
    /// A gift guide: items tagged for:RECIPIENT, best sellers and best rated first (add
    /// --max-price for a budget).
    Gift {
        /// Who it is for (matches the tag for:RECIPIENT), e.g. parent.
        recipient: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// The users in a segment (new, active, dormant, churned, champions, loyal, at-risk, ...).
    Segment {
        /// The segment's name; an unknown name lists the known ones.
        name: String,
        /// Store directory.
        #[arg(long, default_value = crate::DEFAULT_DIR)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A plugin file and its config, from `--plugin`.
type Plug = Option<(PathBuf, String)>;

/// The options every item scenario takes.
#[derive(Args)]
pub struct AskOpts {
    /// How many results.
    #[arg(short, default_value_t = 10)]
    k: usize,
    #[command(flatten)]
    filter: FilterOpts,
    /// The asking user (for the exclusions and personal re-ranking).
    #[arg(long)]
    user: Option<String>,
    /// Leave out what the user already bought.
    #[arg(long)]
    exclude_purchased: bool,
    /// Leave out everything the user already showed interest in.
    #[arg(long)]
    exclude_seen: bool,
    /// Diversify over categories with MMR; LAMBDA in 0..1 (1 = relevance only; try 0.7).
    #[arg(long, value_name = "LAMBDA")]
    diversity: Option<f32>,
    /// Campaign boost TAG=FACTOR: multiply the score of items with TAG by FACTOR, 0.001 to
    /// 1000 (repeatable, at most 8).
    #[arg(long = "boost", value_name = "TAG=FACTOR", value_parser = crate::args::parse_tag)]
    boosts: Vec<(String, f32)>,
    /// The user is a member: members-only items first.
    #[arg(long)]
    member: bool,
    /// The page slot asking (home, cart, ...): a routed slot picks the plugin by A/B weight,
    /// and with --user the answer is recorded as an impression (what the exposure options
    /// below read next time).
    #[arg(long)]
    slot: Option<String>,
    /// Leave out what the user was shown less than DURATION ago (90d, 12h, 30m, 45s).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::parse_duration)]
    not_shown_within: Option<u64>,
    /// Leave out what the user was shown N times or more within DURATION ("3/1d").
    #[arg(long, value_name = "N/DURATION", value_parser = crate::args::parse_cap)]
    cap: Option<(u32, u64)>,
    /// Demote what the user was shown before (halving each show's weight every
    /// Config::exposure_half_life_secs) instead of leaving it out.
    #[arg(long)]
    demote_shown: bool,
    /// The ask's time, seconds since the epoch: what the windows count back from and the time
    /// of the impression recorded. Default: the store's clock (its newest event).
    #[arg(long, value_name = "TS")]
    at: Option<u64>,
    /// Rank with this WebAssembly plugin (.wasm or .wat; see `recostore plugin`).
    #[arg(long, value_name = "WASM")]
    plugin: Option<PathBuf>,
    /// JSON config for --plugin.
    #[arg(long, value_name = "JSON", requires = "plugin")]
    plugin_config: Option<String>,
    /// Rank a page at a time: the answer is the first page and a cursor to the next (a
    /// cursor lives in the process that gave it, so this needs --socket).
    #[arg(long, requires = "socket")]
    paged: bool,
    /// The next page of a paged ask: the cursor the previous page printed, with the same
    /// options (only -k may change). Needs --socket.
    #[arg(long, value_name = "C", requires = "socket", conflicts_with = "paged")]
    cursor: Option<String>,
    /// The page view this ask is a row of: no item is shown in two rows of one view. Needs
    /// --socket.
    #[arg(long, value_name = "ID", requires = "socket")]
    page_view: Option<String>,
    /// Ask the store a running `recostore serve` holds, over its admin socket, instead of
    /// opening --dir (which the server has locked).
    #[arg(long, value_name = "PATH", conflicts_with = "plugin")]
    socket: Option<PathBuf>,
    /// Store directory.
    #[arg(long, default_value = crate::DEFAULT_DIR)]
    dir: PathBuf,
    /// Print one JSON object, the shape of every answer on the CLI and the socket: `scenario`,
    /// `results`, `ranked_by`, `micros` (PROTOCOL.md).
    #[arg(long)]
    json: bool,
}

impl AskOpts {
    fn ask(self, scenario: Scenario, user: Option<String>) -> (Ask, Target, bool, Plug) {
        let mut ask = Ask::new(scenario).k(self.k).filter(self.filter.filter());
        ask.user = user.or(self.user);
        ask.exclude_purchased = self.exclude_purchased;
        ask.exclude_seen = self.exclude_seen;
        ask.diversity = self.diversity;
        ask.members_first = self.member;
        ask.slot = self.slot;
        ask.not_shown_within_secs = self.not_shown_within;
        ask.cap = self
            .cap
            .map(|(times, within_secs)| recostore::ShowCap { times, within_secs });
        ask.demote_shown = self.demote_shown;
        ask.at = self.at;
        ask.paged = self.paged;
        ask.cursor = self.cursor;
        ask.page_view = self.page_view;
        for (tag, factor) in self.boosts {
            ask = ask.boost(tag, factor);
        }
        let plug = self
            .plugin
            .map(|p| (p, self.plugin_config.unwrap_or_default()));
        let target = match self.socket {
            Some(s) => Target::Socket(s),
            None => Target::Dir(self.dir),
        };
        (ask, target, self.json, plug)
    }
}

/// Where an ask goes: a store opened here, or the one a server holds.
enum Target {
    Dir(PathBuf),
    Socket(PathBuf),
}

/// Send `ask` to the server at `socket` and print its answer as [`output::scenario_result`]
/// would, and the next page's cursor.
fn over_socket(
    ask: &Ask,
    socket: &std::path::Path,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut client =
        recostore::admin::AdminClient::connect(socket, std::time::Duration::from_secs(60))?;
    client.set_namespace(crate::namespace().map(String::from));
    let resp = client.call("query", serde_json::to_value(ask)?)?;
    let Some(result) = resp.result.filter(|_| resp.ok) else {
        let (not_found, message) = resp
            .error
            .map(|e| {
                (
                    e.code == recostore::admin::protocol::Code::NotFound,
                    e.message,
                )
            })
            .unwrap_or_default();
        eprintln!("error: {message}");
        return Ok(ExitCode::from(if not_found { 3 } else { 1 }));
    };
    if json {
        output::json(&result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let recs: Vec<recostore::Recommendation> =
        serde_json::from_value(result.get("results").cloned().unwrap_or_default())?;
    let micros = result.get("micros").and_then(|m| m.as_u64()).unwrap_or(0);
    output::scenario_text(
        ask.scenario.name(),
        &recs,
        std::time::Duration::from_micros(micros),
    )?;
    if let Some(c) = result.get("next_cursor").and_then(|c| c.as_str()) {
        println!("next page: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit code 3 for "no such record", like `get`.
fn not_found_or(e: Error) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match e {
        e @ Error::NotFound { .. } => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        e => Err(e.into()),
    }
}

/// Run a scenario subcommand.
pub fn run(cmd: ScenarioCmd) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (mut ask, dir, json, plug) = match cmd {
        ScenarioCmd::UsersLike { user, k, dir, json } => {
            let store = crate::open_existing(&dir)?;
            let started = std::time::Instant::now();
            return match store.users_like(&user, k) {
                Ok(users) => {
                    let took = started.elapsed();
                    output::users(&format!("users like {user}"), &users, took, json)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => not_found_or(e),
            };
        }
        ScenarioCmd::Segment { name, dir, json } => {
            let store = crate::open_existing(&dir)?;
            let users = store.segment_users(&name)?;
            if json {
                #[derive(Serialize)]
                struct Doc<'a> {
                    segment: &'a str,
                    users: &'a [String],
                }
                output::json(&Doc {
                    segment: &name,
                    users: &users,
                })?;
            } else {
                let meaning = SEGMENTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, m)| *m);
                println!("segment {name} ({meaning}): {} users", users.len());
                for u in users {
                    println!("  {u}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ScenarioCmd::Substitutes { item, opts } => opts.ask(Scenario::Substitutes { item }, None),
        ScenarioCmd::Complements { item, opts } => opts.ask(Scenario::Complements { item }, None),
        ScenarioCmd::Together { item, opts } => opts.ask(Scenario::Together { item }, None),
        ScenarioCmd::Viewed { item, opts } => opts.ask(Scenario::Viewed { item }, None),
        ScenarioCmd::ForUser { subject, opts } => opts.ask(Scenario::ForUser, Some(subject)),
        ScenarioCmd::Cart { items, opts } => opts.ask(Scenario::Cart { items }, None),
        ScenarioCmd::AfterPurchase { subject, opts } => {
            opts.ask(Scenario::AfterPurchase, Some(subject))
        }
        ScenarioCmd::SearchRerank { items, query, opts } => {
            let keywords = query.split_whitespace().map(str::to_string).collect();
            opts.ask(Scenario::SearchRerank { items, keywords }, None)
        }
        ScenarioCmd::Trending { opts } => opts.ask(Scenario::Trending, None),
        ScenarioCmd::Gift { recipient, opts } => opts.ask(Scenario::Gift { recipient }, None),
    };
    let dir = match dir {
        Target::Socket(socket) => return over_socket(&ask, &socket, json),
        Target::Dir(dir) => dir,
    };
    let store = crate::open_existing(&dir)?;
    if let Some((path, config)) = plug {
        let wasm = crate::plugin::read_wasm(&path)?;
        // A one-off: it ranks this query and is never written into the store.
        let info = store
            .plugins()
            .load_transient("cli", &wasm, config.as_bytes())?;
        ask.strategy = Some(info.name);
    }
    let started = std::time::Instant::now();
    match store.serve(&ask) {
        Ok(served) => {
            output::scenario_result(ask.scenario.name(), &served, started.elapsed(), json)?;
            let r = &served.ranked_by;
            if let Some(f) = &r.fallback {
                eprintln!(
                    "note: plugin `{}` {f}; the built-in ranker served this answer",
                    r.strategy
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => not_found_or(e),
    }
}
