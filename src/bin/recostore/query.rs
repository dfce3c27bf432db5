//! `recostore query similar|profile`: top-k similarity queries with filters from the command
//! line. The other scenarios are in `scenario.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use recostore::{Error, Method, Query, Similarity, Weighting};

use crate::args::{parse_tag, FilterOpts};
use crate::output;

#[derive(Subcommand)]
pub enum QueryCmd {
    /// Items most similar to ITEM ("more like this", substitutes).
    Similar {
        /// The item id.
        item: String,
        #[command(flatten)]
        opts: QueryOpts,
    },
    /// Items that best match a weighted tag profile (a user's tags, or tags from a search).
    Profile {
        /// A tag and weight as name=weight (repeat the flag); weight defaults to 1.
        #[arg(long = "tag", required = true, value_parser = parse_tag)]
        tags: Vec<(String, f32)>,
        #[command(flatten)]
        opts: QueryOpts,
    },
    #[command(flatten)]
    Scenario(Box<crate::scenario::ScenarioCmd>),
}

/// Similarity on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum SimArg {
    /// Cosine of the tag weight vectors (0..1).
    Cosine,
    /// Dot product of the weights.
    Dot,
    /// Weighted Jaccard (0..1).
    Jaccard,
}

/// Method on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Neighbour lists, direct scoring or the pruned engine, whichever is exact and fastest.
    Auto,
    /// Always the pruned engine.
    Pruned,
    /// Score every item (slow; the reference answer).
    Exhaustive,
}

#[derive(Args)]
pub struct QueryOpts {
    /// How many results.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// How tags are compared.
    #[arg(long, value_enum, default_value = "cosine")]
    similarity: SimArg,
    /// Weigh rare tags up (BM25-style idf).
    #[arg(long)]
    idf: bool,
    #[command(flatten)]
    filter: FilterOpts,
    /// Threads to split the scan across.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Force an algorithm (for checking; `auto` is always exact).
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
    /// Store directory.
    #[arg(long, default_value = crate::DEFAULT_DIR)]
    dir: PathBuf,
    /// Print one JSON object, the shape of every answer (PROTOCOL.md), with `stats`: the path
    /// taken and its cost.
    #[arg(long)]
    json: bool,
}

impl QueryOpts {
    fn apply(self, q: Query) -> (Query, PathBuf, bool) {
        let filter = self.filter.filter();
        let q = q
            .k(self.k)
            .similarity(match self.similarity {
                SimArg::Cosine => Similarity::Cosine,
                SimArg::Dot => Similarity::Dot,
                SimArg::Jaccard => Similarity::Jaccard,
            })
            .weighting(if self.idf {
                Weighting::Idf
            } else {
                Weighting::None
            })
            .filter(filter)
            .threads(self.threads)
            .method(match self.method {
                MethodArg::Auto => Method::Auto,
                MethodArg::Pruned => Method::Pruned,
                MethodArg::Exhaustive => Method::Exhaustive,
            });
        (q, self.dir, self.json)
    }
}

/// Run a query subcommand.
pub fn run(cmd: QueryCmd) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (scenario, heading, (q, dir, json)) = match cmd {
        QueryCmd::Scenario(cmd) => return crate::scenario::run(*cmd),
        QueryCmd::Similar { item, opts } => (
            "similar",
            format!("similar to {item}"),
            opts.apply(Query::similar_to(item)),
        ),
        QueryCmd::Profile { tags, opts } => (
            "profile",
            "profile match".to_string(),
            opts.apply(Query::profile(tags)),
        ),
    };
    let store = crate::open_existing(&dir)?;
    let started = std::time::Instant::now();
    match store.query_with_stats(&q) {
        Ok((recs, stats)) => {
            output::query_result(scenario, &heading, &recs, &stats, started.elapsed(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ Error::NotFound { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(e.into()),
    }
}
