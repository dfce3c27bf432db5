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
//! - [`guard`]: guardrails that roll a promoted version back on their own.
//! - `persist`: plugins and slots written to the store's sled tree, loaded back on open.
//! - [`slots`]: A/B routing of users to strategies and attribution of what they did.
//! - [`shadow`]: shadow variants, ranked off the request path and compared with what served.
//! - [`interleave`]: team-draft interleaving of two strategies in one list, and its test.
//! - [`runner`]: run a plugin once on a JSON input, for strategy authors.

pub mod abi;
mod fault;
mod file;
pub mod guard;
pub mod host;
pub mod interleave;
mod persist;
pub mod registry;
pub mod runner;
pub mod shadow;
pub mod slots;
pub mod version;

pub use abi::{Context, Feature, FeatureSet};
pub use file::{read_file, read_module};
pub use guard::{Guardrails, Rollback, Watch};
pub use persist::MODULES_DIR;
pub use registry::{PluginInfo, Plugins};
pub use shadow::ShadowStats;
pub use slots::{InterleaveStats, Mode, Strategy, Variant, VariantStats};
pub use version::{Fault, FaultCounts, PluginVersion};

/// The wasmtime release line the host is built against (an LTS line: security fixes for two
/// years from its release in August 2026). Printed by `recostore plugin check`.
pub const WASMTIME_LINE: &str = "48 (LTS)";

pub use crate::config::PluginLimits;

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
