//! What can go wrong in a plugin call, how a wasmtime error maps onto it, and how faults are
//! counted per plugin version.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;
#[cfg(feature = "plugins")]
use wasmtime::Trap;

#[cfg(feature = "plugins")]
use super::host::Guest;

/// Why a plugin call produced no usable scores. The query it served was ranked by the
/// built-in ranker instead, and the fault was counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// The call ran past [`super::PluginLimits::deadline`].
    #[error("ran past its deadline")]
    Deadline,
    /// The call burnt its fuel budget.
    #[error("ran out of fuel")]
    Fuel,
    /// The instance tried to grow memory past [`super::PluginLimits::memory_bytes`].
    #[error("hit its memory limit")]
    Memory,
    /// The wasm stack overflowed (deep or unbounded recursion).
    #[error("overflowed its stack")]
    Stack,
    /// Any other trap: a Rust panic (`unreachable`), an out-of-bounds access, a division by
    /// zero…
    #[error("trapped: {reason}")]
    Trap {
        /// wasmtime's description.
        reason: String,
    },
    /// `recostore_input` returned a buffer that does not fit in the plugin's memory.
    #[error("returned buffer {ptr:#x}+{bytes} outside its {memory}-byte memory")]
    BadPointer {
        /// The pointer returned.
        ptr: u32,
        /// Bytes the buffer needs.
        bytes: usize,
        /// The memory size.
        memory: usize,
    },
    /// `recostore_score(n)` returned something other than `n`.
    #[error("returned {got} from recostore_score, expected {expected}")]
    WrongLength {
        /// Candidates given.
        expected: u32,
        /// What it returned (negative: the plugin's own error code).
        got: i32,
    },
    /// A fresh instance could not be made or initialised.
    #[error("could not be instantiated: {reason}")]
    Instantiate {
        /// Why.
        reason: String,
    },
}

/// Fault counters of one plugin version, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// [`Fault::Deadline`].
    pub deadline: u64,
    /// [`Fault::Fuel`].
    pub fuel: u64,
    /// [`Fault::Memory`].
    pub memory: u64,
    /// [`Fault::Stack`].
    pub stack: u64,
    /// [`Fault::Trap`].
    pub trap: u64,
    /// [`Fault::BadPointer`] and [`Fault::WrongLength`].
    pub bad_output: u64,
    /// [`Fault::Instantiate`].
    pub instantiate: u64,
}

impl FaultCounts {
    /// All faults.
    pub fn total(&self) -> u64 {
        self.deadline
            + self.fuel
            + self.memory
            + self.stack
            + self.trap
            + self.bad_output
            + self.instantiate
    }
}

/// Live counters (relaxed atomics: they are statistics, not synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub nanos: AtomicU64,
    pub non_finite: AtomicU64,
    pub logs_dropped: AtomicU64,
    pub in_a_row: AtomicU64,
    /// Latency of calls on a warm instance, for the guardrails' p99 (see `guard`). Calls
    /// that had to instantiate are left out: a version just loaded makes one per concurrent
    /// query, which would set its p99 against an old version whose cold starts are long
    /// diluted.
    pub latency: crate::metrics::Histogram,
    /// The call count at the guardrails' last judgement (see `Plugins::after_call`).
    pub judged: AtomicU64,
    faults: [AtomicU64; 7],
}

impl Counters {
    pub(crate) fn fault(&self, f: &Fault) -> u64 {
        let i = match f {
            Fault::Deadline => 0,
            Fault::Fuel => 1,
            Fault::Memory => 2,
            Fault::Stack => 3,
            Fault::Trap { .. } => 4,
            Fault::BadPointer { .. } | Fault::WrongLength { .. } => 5,
            Fault::Instantiate { .. } => 6,
        };
        self.faults[i].fetch_add(1, Relaxed);
        self.in_a_row.fetch_add(1, Relaxed) + 1
    }

    /// Add saved fault counts, in [`FaultCounts`]' order.
    pub(crate) fn add_faults(&self, f: [u64; 7]) {
        for (mine, n) in self.faults.iter().zip(f) {
            mine.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn faults(&self) -> FaultCounts {
        let f = |i: usize| self.faults[i].load(Relaxed);
        FaultCounts {
            deadline: f(0),
            fuel: f(1),
            memory: f(2),
            stack: f(3),
            trap: f(4),
            bad_output: f(5),
            instantiate: f(6),
        }
    }
}

/// Map a wasmtime error from a call into the fault it stands for.
#[cfg(feature = "plugins")]
pub(crate) fn classify(e: &wasmtime::Error, guest: &Guest) -> Fault {
    if guest.limiter.refused {
        return Fault::Memory;
    }
    // What the plugin said last before trapping (a panic's message and location, through
    // the SDK's hook) is worth more than wasmtime's "unreachable instruction executed".
    let said = |reason: String| match &guest.last_error {
        Some(line) => format!("{reason}; it logged: {line}"),
        None => reason,
    };
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Deadline,
        Some(Trap::OutOfFuel) => Fault::Fuel,
        Some(Trap::StackOverflow) => Fault::Stack,
        Some(t) => Fault::Trap {
            reason: said(t.to_string()),
        },
        None => Fault::Trap {
            reason: said(format!("{e:#}")),
        },
    }
}
