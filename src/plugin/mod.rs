//! Ranking strategies as sandboxed WebAssembly plugins.
//!
//! A plugin is a plain core module built for `wasm32-unknown-unknown` that speaks ABI v1
//! ([`abi`], and `plugins/ABI.md` for authors). The store hands it columns of candidate
//! features and reads back one score per candidate. Everything a plugin can do wrong is
//! contained: the call is bounded in time (epoch deadline), optionally in fuel, in memory and
//! in stack; any trap or bad output throws the instance away, ranks that query with the
//! built-in ranker and counts the fault; a plugin that keeps faulting is disabled.
//!
//! - `file`: a module read from a path, a regular file only and within the size cap.
//! - [`host`]: the one wasmtime engine, its epoch ticker, the module cache and load checks.
//! - [`version`]: one loaded version of a plugin, its warm instance pool and the call path.
//! - `fault`: what can go wrong in a call, classified from wasmtime's errors, and counted.
//! - [`registry`]: plugins by name with hot swap, rollback, unload and auto-disable.
//! - `persist`: plugins and slots written to the store's sled tree, loaded back on open.
//! - [`slots`]: A/B routing of users to strategies and attribution of what they did.
//! - [`runner`]: run a plugin once on a JSON input, for strategy authors.

pub mod abi;
mod fault;
mod file;
pub mod host;
mod persist;
pub mod registry;
pub mod runner;
pub mod slots;
pub mod version;

use std::time::Duration;

pub use abi::{Context, Feature, FeatureSet};
pub use file::{read_file, read_module};
pub use persist::MODULES_DIR;
pub use registry::{PluginInfo, Plugins};
pub use slots::{Strategy, Variant, VariantStats};
pub use version::{Fault, FaultCounts, PluginVersion};

/// The wasmtime release line the host is built against (an LTS line: security fixes for two
/// years from its release in August 2026). Printed by `recostore plugin check`.
pub const WASMTIME_LINE: &str = "48 (LTS)";

/// Limits every plugin call runs under, and how the host reacts to faults.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginLimits {
    /// Largest module accepted at load, in bytes. Default 8 MiB.
    pub max_module_bytes: usize,
    /// Most linear memory one instance may grow to, in bytes. Default 32 MiB.
    pub memory_bytes: usize,
    /// Most elements all tables of one instance may hold, declared or grown. Default 100,000
    /// (a table element costs the host about 30 bytes, so 3 MiB); a Rust plugin's function
    /// table holds one element per function whose address is taken, a few hundred at most.
    pub table_elements: usize,
    /// Most functions a module may define. Default 10,000 (the SDK's example strategy has
    /// under 200); compile time and memory grow with the count.
    pub max_functions: usize,
    /// Largest function body, in bytes. Default 1 MiB.
    pub max_function_bytes: usize,
    /// Deepest nesting of blocks, loops and ifs in one function. Default 10,000 (a Rust
    /// `match` of n arms nests about n blocks); the compiler's memory grows with depth.
    pub max_nesting: usize,
    /// Most native stack wasm code may use, in bytes. Default 512 KiB.
    pub stack_bytes: usize,
    /// Wall-clock budget of one call, enforced by epoch interruption. Default 10 ms.
    pub deadline: Duration,
    /// How often the ticker thread advances the epoch: the deadline's granularity. Default
    /// 1 ms.
    pub tick: Duration,
    /// Fuel (roughly, wasm instructions) one call may burn; `None` (the default) turns fuel
    /// metering off. Metering costs about 15% of plugin time on top of the epoch checks
    /// (bench/RESULTS.md); the deadline already bounds time, fuel makes the bound
    /// deterministic.
    pub fuel: Option<u64>,
    /// Most candidates handed to a plugin per query: a scenario's best `rerank_depth` by its
    /// own score are re-ranked and the rest are dropped. Default 200: gathering and featurising
    /// a candidate costs about 0.3 µs, so depth, not the plugin, sets the query cost.
    pub rerank_depth: usize,
    /// Longest log line kept, in bytes (longer ones are cut). Default 512.
    pub log_bytes: usize,
    /// Log lines kept per call; further ones are dropped and counted. Default 8.
    pub logs_per_call: u32,
    /// Faults in a row after which a plugin is disabled. Default 5.
    pub faults_in_a_row: u32,
    /// Warm instances kept per plugin version. Default: twice the CPU count, at least 4.
    pub pool_size: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        PluginLimits {
            max_module_bytes: 8 << 20,
            memory_bytes: 32 << 20,
            table_elements: 100_000,
            max_functions: 10_000,
            max_function_bytes: 1 << 20,
            max_nesting: 10_000,
            stack_bytes: 512 << 10,
            deadline: Duration::from_millis(10),
            tick: Duration::from_millis(1),
            fuel: None,
            rerank_depth: 200,
            log_bytes: 512,
            logs_per_call: 8,
            faults_in_a_row: 5,
            pool_size: (2 * cpus).max(4),
        }
    }
}

impl PluginLimits {
    /// Set [`PluginLimits::deadline`].
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }
    /// Set [`PluginLimits::fuel`].
    pub fn fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }
    /// Set [`PluginLimits::memory_bytes`].
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Set [`PluginLimits::faults_in_a_row`].
    pub fn faults_in_a_row(mut self, n: u32) -> Self {
        self.faults_in_a_row = n;
        self
    }
    /// Set [`PluginLimits::rerank_depth`].
    pub fn rerank_depth(mut self, n: usize) -> Self {
        self.rerank_depth = n;
        self
    }

    /// The epoch deadline in ticks: at least `deadline`, at most one tick more.
    #[cfg(feature = "plugins")]
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        crate::narrow::u64_from(self.deadline.as_nanos().div_ceil(tick))
            .max(1)
            .saturating_add(1)
    }
}

/// A plugin name: 1–64 bytes of `a-z 0-9 - _ .`, so it is safe in logs, paths and the admin
/// protocol.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok && name != "builtin" {
        Ok(())
    } else {
        Err("names are 1-64 characters of a-z, 0-9, '-', '_' and '.', and not `builtin`".into())
    }
}
