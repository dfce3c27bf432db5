//! `recostore plugin …`: test a ranking plugin without a live store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use recostore::plugin::runner::{self, RunInput};
use recostore::plugin::{Feature, PluginLimits, Plugins};

use crate::output;

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Score a JSON input with a plugin and print the scores, the order, fuel and memory used,
    /// its log lines and the time taken.
    ///
    /// The input is {"context": {...}, "config": {...}, "candidates": [{"id": 1, "name":
    /// "tent", "similarity": 0.9, "price": 120, ...}]}; plugins/examples/input.json is one.
    /// Features a candidate leaves out are 0.
    Run(RunArgs),
    /// Run the load checks (size, imports, exports, ABI version, init and the smoke run) and
    /// print what the plugin reads.
    Check {
        /// The module: .wasm, or .wat text.
        wasm: PathBuf,
        /// A JSON config for the plugin's init.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
    },
    /// List the features a plugin can ask for, in ABI bit order.
    Features,
    /// Would this strategy have done better on the store's own history? Cuts the logged
    /// events at one time T, replays those before it, and has the candidate and the current
    /// strategy answer the same ask for every user; prints recall@k, NDCG@k and coverage of
    /// both, the share of items the candidate changes, and the difference with a 95%
    /// bootstrap interval. Nothing the store serves changes (closing it writes a checkpoint,
    /// as every open does); it ranks with the store's default configuration.
    ///
    /// T is, by default, the time before which 80% of the logged interest events (anything
    /// but searches and impressions) fall. On a store an admin socket serves, use the
    /// socket's `plugin.replay` instead.
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The candidate module: .wasm, or .wat text.
    wasm: PathBuf,
    /// Store directory.
    #[arg(long, default_value = crate::DEFAULT_DIR)]
    dir: PathBuf,
    /// The scenario asked: for-user, or cart (the cart is the user's last five items before T).
    #[arg(long, default_value = "for-user")]
    scenario: String,
    /// Recommendations per ask.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Cut at this event time (seconds, as the events carry them).
    #[arg(long, value_name = "T", conflicts_with = "last")]
    since: Option<u64>,
    /// Cut this long before the newest logged interest event: 90d, 12h, 30m or seconds.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::parse_duration)]
    last: Option<u64>,
    /// Compare with this loaded plugin instead of the built-in ranker.
    #[arg(long, value_name = "PLUGIN", default_value = "builtin")]
    against: String,
    /// A JSON config for the candidate's init.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// Bootstrap resamples behind the intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Print one JSON object: {"candidate": {...}, "current": {...}, "difference": {...}, ...}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The module: .wasm, or .wat text.
    wasm: PathBuf,
    /// The JSON input (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// Fuel budget of one call (fuel metering is on in the runner so that it can report use;
    /// a store meters none by default).
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Per-call deadline in milliseconds [default: the store's, `PluginLimits::default()`, 10].
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory limit in MiB [default: the store's, 32].
    #[arg(long)]
    memory_mb: Option<usize>,
    /// Calls to time (the median is printed).
    #[arg(long, default_value_t = 101)]
    repeat: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Largest runner input read, in bytes: far above any real candidate list, and a bound on
/// what `/dev/zero` or a runaway pipe can make the CLI hold.
const MAX_INPUT_BYTES: usize = 256 << 20;

/// A module (`what` = "a module") or an input file, or standard input for `-`: a regular file
/// only, and never more than `max` bytes.
fn read(
    path: &Path,
    max: usize,
    what: &str,
    cap: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), max as u64 + 1),
            &mut buf,
        )?;
        if buf.len() > max {
            return Err(format!(
                "standard input holds more than {max} bytes ({cap}); is it {what}?"
            )
            .into());
        }
        return Ok(buf);
    }
    Ok(recostore::plugin::read_file(path, max, what, cap)?)
}

/// The module at `path` (or `-`), within the default size cap.
pub fn read_wasm(path: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    read(
        path,
        PluginLimits::default().max_module_bytes,
        "a module",
        "PluginLimits::max_module_bytes",
    )
}

/// A load refusal in the runner's words: nothing is serving here, so the library's "whatever
/// served before keeps serving" does not apply.
fn for_the_runner(e: recostore::Error, wasm: &Path) -> Box<dyn std::error::Error> {
    match e {
        recostore::Error::PluginRejected { reason, .. } => format!(
            "{}: {reason}. Fix the module or its config (see plugins/ABI.md) and try again",
            wasm.display()
        )
        .into(),
        other => other.into(),
    }
}

/// Run a plugin subcommand.
pub fn run(cmd: PluginCmd) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cmd {
        PluginCmd::Run(a) => {
            let wasm = read_wasm(&a.wasm)?;
            let input: RunInput = serde_json::from_slice(&read(
                &a.input,
                MAX_INPUT_BYTES,
                "a runner input",
                "256 MiB",
            )?)
            .map_err(|e| format!("{}: not a runner input: {e}", a.input.display()))?;
            let store = PluginLimits::default();
            let limits = PluginLimits::default()
                .fuel(Some(a.fuel))
                .deadline(a.deadline_ms.map_or(store.deadline, Duration::from_millis))
                .memory_bytes(a.memory_mb.map_or(store.memory_bytes, |mb| mb << 20));
            let report = runner::run(&wasm, &input, limits, a.repeat)
                .map_err(|e| for_the_runner(e, &a.wasm))?;
            if a.json {
                output::json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("features: {}", report.features.join(", "));
            println!("{:>4}  {:>12}  candidate", "rank", "score");
            for s in &report.ranked {
                println!("{:>4}  {:>12.6}  {}", s.rank, s.score, s.name);
            }
            println!(
                "fuel used: {}   memory: {} KiB   time: {:.1} µs median of {} calls",
                report
                    .fuel_used
                    .map_or_else(|| "off".to_string(), |f| f.to_string()),
                report.memory_bytes / 1024,
                report.median_us,
                report.repeats
            );
            if report.logs.is_empty() {
                println!("logs: none");
            } else {
                println!("logs ({} dropped):", report.logs_dropped);
                for l in &report.logs {
                    println!("  [{}] {}", l.level, l.text);
                }
            }
        }
        PluginCmd::Check { wasm, config } => {
            if let Some(text) = &config {
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| format!("--config is not JSON: {e}"))?;
            }
            let bytes = read_wasm(&wasm)?;
            let plugins = Plugins::new(PluginLimits::default());
            let name = "check";
            let info = plugins
                .load_with_config(name, &bytes, config.as_deref().unwrap_or("").as_bytes())
                .map_err(|e| for_the_runner(e, &wasm))?;
            println!(
                "{}: ABI v{} ok, smoke run ok (wasmtime {}); reads {}",
                wasm.display(),
                recostore::plugin::abi::ABI_VERSION,
                recostore::plugin::WASMTIME_LINE,
                info.features.join(", ")
            );
        }
        PluginCmd::Replay(a) => replay(a)?,
        PluginCmd::Features => {
            for f in Feature::ALL {
                println!("{:>2}  {}", f as u8, f.name());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(a: ReplayArgs) -> Result<(), Box<dyn std::error::Error>> {
    use recostore::eval::replay::{self, ReplayOptions, Split};
    let config = match &a.config {
        Some(text) => {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("--config is not JSON: {e}"))?;
            text.as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    let wasm = read_wasm(&a.wasm)?;
    let store = crate::open_existing(&a.dir)?;
    let split = match (a.since, a.last) {
        (Some(t), _) => Split::At(t),
        (None, Some(secs)) => Split::Last(secs),
        (None, None) => Split::default(),
    };
    let opts = ReplayOptions {
        scenario: a.scenario,
        k: a.k,
        split,
        against: a.against,
        resamples: a.resamples,
        progress: crate::progress::bars(!a.json),
    };
    let r =
        replay::replay(&store, &wasm, &config, &opts).map_err(|e| for_the_runner(e, &a.wasm))?;
    if a.json {
        output::json(&r)?;
        return Ok(());
    }
    println!(
        "{} @{}: {} users asked, cut at {} ({} events before it, {} new items after)",
        r.scenario, r.k, r.users, r.since, r.train_events, r.test_items
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>10}",
        "", "recall", "ndcg", "coverage", "fallbacks"
    );
    for (label, s) in [
        ("candidate", &r.candidate),
        (r.current.strategy.as_str(), &r.current),
    ] {
        println!(
            "{:<12} {:>9.4} {:>9.4} {:>9.4} {:>10}",
            label, s.recall, s.ndcg, s.coverage, s.fallbacks
        );
    }
    let d = &r.difference;
    for (name, i) in [("recall", d.recall), ("ndcg", d.ndcg)] {
        println!(
            "difference {name:<9} {:+.4}  ({:.0}% interval {:+.4} to {:+.4}, {} resamples){}",
            i.value,
            d.confidence * 100.0,
            i.low,
            i.high,
            d.resamples,
            if i.low > 0.0 {
                ": candidate better"
            } else if i.high < 0.0 {
                ": candidate worse"
            } else {
                ""
            }
        );
    }
    println!(
        "difference coverage  {:+.4}  (no interval: resampled users repeat, which shrinks coverage)",
        d.coverage
    );
    println!(
        "the candidate changes {:.1}% of the items in an answer ({:.1}s)",
        d.changed * 100.0,
        r.seconds
    );
    Ok(())
}
