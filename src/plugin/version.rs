//! One loaded version of a plugin: its pre-linked module, a pool of warm instances and the
//! call path that turns candidate columns into scores, or into a [`Fault`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use wasmtime::{InstancePre, Memory, Trap, TypedFunc};

use super::abi::{self, Context, Feature, FeatureSet, Layout};
use super::host::{Guest, Host, LogLine};
use crate::error::{Error, Result};

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
    faults: [AtomicU64; 7],
}

impl Counters {
    fn fault(&self, f: &Fault) -> u64 {
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

/// What a plugin is asked to score: the context block and one value per candidate per
/// requested feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// Who is asking and where.
    pub context: Context,
    /// Candidate ids (dense item ids in the store; any `u32` in the runner).
    pub ids: Vec<u32>,
    /// One column per feature the plugin asked for, in [`FeatureSet::iter`] order, each
    /// `ids.len()` long.
    pub columns: Vec<Vec<f32>>,
}

/// A successful call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// One score per candidate, exactly as the plugin wrote them (NaN included).
    pub scores: Vec<f32>,
    /// Fuel the call burnt, when fuel metering is on.
    pub fuel_used: Option<u64>,
    /// The instance's linear memory after the call, in bytes.
    pub memory_bytes: usize,
    /// Wall time of the call, input copy and output read included.
    pub elapsed: Duration,
    /// Lines logged during the call (only kept by the runner).
    pub logs: Vec<LogLine>,
    /// Lines dropped by the rate limit during the call.
    pub logs_dropped: u64,
}

/// A warm instance and the exports the call path uses.
struct Warm {
    store: wasmtime::Store<Guest>,
    instance: wasmtime::Instance,
    memory: Memory,
    input: TypedFunc<i32, i32>,
    score: TypedFunc<i32, i32>,
}

/// One published (or being checked) version of a plugin. Cheap to share: queries hold an
/// `Arc` for the length of one call, so a swap never pulls a version from under a call.
pub struct PluginVersion {
    name: Arc<str>,
    number: u32,
    hash: u64,
    features: FeatureSet,
    config: Vec<u8>,
    /// The module as loaded, kept so the registry can persist it.
    wasm: Arc<[u8]>,
    has_init: bool,
    capture: bool,
    pre: InstancePre<Guest>,
    host: Arc<Host>,
    pool: ArrayQueue<Warm>,
    pub(crate) counters: Counters,
    live: Option<Arc<AtomicUsize>>,
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.name)
            .field("number", &self.number)
            .field("hash", &format_args!("{:016x}", self.hash))
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl Drop for PluginVersion {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.fetch_sub(1, Relaxed);
        }
    }
}

/// Map a wasmtime error from a call into the fault it stands for.
fn classify(e: &wasmtime::Error, guest: &Guest) -> Fault {
    if guest.limiter.refused {
        return Fault::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Deadline,
        Some(Trap::OutOfFuel) => Fault::Fuel,
        Some(Trap::StackOverflow) => Fault::Stack,
        Some(t) => Fault::Trap {
            reason: t.to_string(),
        },
        None => Fault::Trap {
            reason: format!("{e:#}"),
        },
    }
}

impl PluginVersion {
    /// Compile, link, instantiate, check and smoke-test `wasm` as version `number` of plugin
    /// `name`. `capture` keeps log lines in each [`Output`] (the runner wants them).
    pub(crate) fn load(
        host: &Arc<Host>,
        name: &str,
        number: u32,
        wasm: &[u8],
        config: &[u8],
        capture: bool,
        live: Option<Arc<AtomicUsize>>,
    ) -> Result<PluginVersion> {
        let reject = |reason: String| Error::PluginRejected {
            name: name.to_string(),
            reason,
        };
        let (module, hash) = host.compile(name, wasm)?;
        let pre = host
            .linker
            .instantiate_pre(&module)
            .map_err(|e| reject(format!("it cannot be linked: {e:#}")))?;
        let has_init = module.get_export(abi::EXPORT_INIT).is_some();
        if !config.is_empty() && !has_init {
            return Err(reject(
                "a config was given but the plugin exports no `recostore_init` to read it".into(),
            ));
        }
        if let Some(live) = &live {
            live.fetch_add(1, Relaxed);
        }
        let mut v = PluginVersion {
            name: Arc::from(name),
            number,
            hash,
            features: FeatureSet::default(),
            config: config.to_vec(),
            wasm: Arc::from(wasm),
            has_init,
            capture,
            pre,
            host: host.clone(),
            pool: ArrayQueue::new(host.limits.pool_size.max(1)),
            counters: Counters::default(),
            live,
        };
        let mut warm = v
            .instantiate()
            .map_err(|f| reject(format!("it {f} while starting")))?;
        let started = |e: wasmtime::Error, warm: &Warm| {
            reject(format!(
                "its `{}`/`{}` exports failed: {}",
                abi::EXPORT_VERSION,
                abi::EXPORT_FEATURES,
                classify(&e, warm.store.data())
            ))
        };
        let version = warm
            .instance
            .get_typed_func::<(), i32>(&mut warm.store, abi::EXPORT_VERSION)
            .and_then(|f| f.call(&mut warm.store, ()))
            .map_err(|e| started(e, &warm))?;
        let mask = warm
            .instance
            .get_typed_func::<(), i64>(&mut warm.store, abi::EXPORT_FEATURES)
            .and_then(|f| f.call(&mut warm.store, ()))
            .map_err(|e| started(e, &warm))?;
        if version as u32 != abi::ABI_VERSION {
            return Err(reject(format!(
                "it was built for ABI version {version}, and this host speaks version {}; \
                 rebuild it against the matching SDK",
                abi::ABI_VERSION
            )));
        }
        v.features = FeatureSet::from_mask(mask as u64).ok_or_else(|| {
            reject(format!(
                "its feature mask {mask:#x} sets bits ABI v{} does not define (known: {:#x})",
                abi::ABI_VERSION,
                FeatureSet::KNOWN
            ))
        })?;
        let _ = v.pool.push(warm);
        let smoke = v.smoke_input();
        v.run(&smoke)
            .map_err(|f| reject(format!("its smoke run on a fixed input {f}")))?;
        Ok(v)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version number (1 for the first load of a name, then counting up).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// xxh3 hash of the module bytes.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The module bytes and config it was loaded from.
    pub(crate) fn source(&self) -> (&[u8], &[u8]) {
        (&self.wasm, &self.config)
    }

    /// The feature columns the plugin asked for.
    pub fn features(&self) -> FeatureSet {
        self.features
    }

    /// Calls made and faults counted, by kind.
    pub fn faults(&self) -> FaultCounts {
        self.counters.faults()
    }

    /// Calls made (successful or not).
    pub fn calls(&self) -> u64 {
        self.counters.calls.load(Relaxed)
    }

    /// A fixed input every version must score without fault before it is published.
    pub(crate) fn smoke_input(&self) -> Input {
        const N: u32 = 16;
        let ids: Vec<u32> = (0..N).collect();
        let columns = self
            .features
            .iter()
            .map(|f| {
                ids.iter()
                    .map(|&i| {
                        let x = i as f32;
                        match f {
                            Feature::Similarity | Feature::TagMatch => 1.0 / (1.0 + x),
                            Feature::ConversionRate => 0.01 * x,
                            Feature::Rating => 1.0 + (i % 5) as f32,
                            Feature::Price => 5.0 * (1.0 + x),
                            Feature::MembersOnly => (i % 4 == 0) as u8 as f32,
                            Feature::Category => (1 + i % 3) as f32,
                            _ => 10.0 * x,
                        }
                    })
                    .collect()
            })
            .collect();
        Input {
            context: Context {
                k: 10,
                scenario: 5,
                slot: 1,
                tier: 1,
                spend_band: 3,
                segment: 2,
            },
            ids,
            columns,
        }
    }

    /// A fresh instance, initialised with the version's config.
    fn instantiate(&self) -> Result<Warm, Fault> {
        let limits = &self.host.limits;
        let mut store = wasmtime::Store::new(
            &self.host.engine,
            Guest::new(self.name.clone(), limits, self.capture),
        );
        store.limiter(|g| &mut g.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(limits.deadline_ticks());
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| Fault::Instantiate {
                reason: e.to_string(),
            })?;
        }
        let fail = |reason: String| Fault::Instantiate { reason };
        let inst = match self.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => {
                return Err(match classify(&e, store.data()) {
                    Fault::Trap { reason } => fail(reason),
                    f => f,
                })
            }
        };
        let memory = inst
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| fail("no `memory` export".into()))?;
        let input = inst
            .get_typed_func::<i32, i32>(&mut store, abi::EXPORT_INPUT)
            .map_err(|e| fail(e.to_string()))?;
        let score = inst
            .get_typed_func::<i32, i32>(&mut store, abi::EXPORT_SCORE)
            .map_err(|e| fail(e.to_string()))?;
        if self.has_init {
            let config = inst
                .get_typed_func::<i32, i32>(&mut store, abi::EXPORT_CONFIG)
                .map_err(|e| fail(e.to_string()))?;
            let init = inst
                .get_typed_func::<i32, i32>(&mut store, abi::EXPORT_INIT)
                .map_err(|e| fail(e.to_string()))?;
            let len = self.config.len() as i32;
            let ptr = config
                .call(&mut store, len)
                .map_err(|e| classify(&e, store.data()))? as u32 as usize;
            let dst = memory
                .data_mut(&mut store)
                .get_mut(ptr..ptr.saturating_add(self.config.len()))
                .ok_or_else(|| fail("recostore_config returned a pointer out of bounds".into()))?;
            dst.copy_from_slice(&self.config);
            let status = init
                .call(&mut store, len)
                .map_err(|e| classify(&e, store.data()))?;
            if status != 0 {
                return Err(fail(format!(
                    "recostore_init rejected its config with status {status}"
                )));
            }
        }
        Ok(Warm {
            store,
            instance: inst,
            memory,
            input,
            score,
        })
    }

    /// Score `input`. On success the instance goes back to the pool; on any fault it is
    /// dropped (a trapped instance may hold broken state), the fault is counted, and the
    /// caller falls back.
    pub fn run(&self, input: &Input) -> Result<Output, Fault> {
        let started = Instant::now();
        self.counters.calls.fetch_add(1, Relaxed);
        let result = self
            .pool
            .pop()
            .map_or_else(|| self.instantiate(), Ok)
            .and_then(|mut warm| {
                let out = self.call(&mut warm, input);
                let g = warm.store.data_mut();
                g.logs_this_call = 0;
                let dropped = std::mem::take(&mut g.logs_dropped);
                self.counters.logs_dropped.fetch_add(dropped, Relaxed);
                out.map(|mut o| {
                    o.logs_dropped = dropped;
                    if let Some(c) = &mut warm.store.data_mut().capture {
                        o.logs = std::mem::take(c);
                    }
                    let _ = self.pool.push(warm);
                    o
                })
            });
        let elapsed = started.elapsed();
        self.counters
            .nanos
            .fetch_add(elapsed.as_nanos() as u64, Relaxed);
        match result {
            Ok(mut o) => {
                self.counters.in_a_row.store(0, Relaxed);
                let bad = o.scores.iter().filter(|s| !s.is_finite()).count();
                self.counters.non_finite.fetch_add(bad as u64, Relaxed);
                o.elapsed = elapsed;
                Ok(o)
            }
            Err(f) => {
                self.counters.fault(&f);
                tracing::warn!(
                    target: "recostore::plugin",
                    plugin = &*self.name,
                    version = self.number,
                    "plugin {f}; this query was ranked by the built-in ranker"
                );
                Err(f)
            }
        }
    }

    /// Faults in a row so far (reset by any good call).
    pub(crate) fn faults_in_a_row(&self) -> u64 {
        self.counters.in_a_row.load(Relaxed)
    }

    /// One call on a warm instance: fill the buffer, score, bounds-check and read.
    fn call(&self, warm: &mut Warm, input: &Input) -> Result<Output, Fault> {
        let n = input.ids.len();
        let layout = Layout {
            n,
            columns: self.features.len(),
        };
        let limits = &self.host.limits;
        let store = &mut warm.store;
        store.set_epoch_deadline(limits.deadline_ticks());
        if let Some(fuel) = limits.fuel {
            let _ = store.set_fuel(fuel);
        }
        let too_big = |memory| Fault::BadPointer {
            ptr: 0,
            bytes: layout.bytes(),
            memory,
        };
        let n32 = i32::try_from(n).map_err(|_| too_big(0))?;
        if layout.bytes() > limits.memory_bytes || input.columns.len() != layout.columns {
            return Err(too_big(limits.memory_bytes));
        }
        let ptr = warm
            .input
            .call(&mut *store, n32)
            .map_err(|e| classify(&e, store.data()))? as u32;
        let mem = warm.memory.data_mut(&mut *store);
        let memory = mem.len();
        let buf = (ptr as usize)
            .checked_add(layout.bytes())
            .and_then(|end| mem.get_mut(ptr as usize..end))
            .ok_or(Fault::BadPointer {
                ptr,
                bytes: layout.bytes(),
                memory,
            })?;
        buf[..abi::CONTEXT_BYTES].copy_from_slice(&input.context.encode(n as u32));
        write_words(
            &mut buf[layout.ids()..],
            input.ids.iter().map(|i| i.to_le_bytes()),
        );
        for (c, col) in input.columns.iter().enumerate() {
            write_words(
                &mut buf[layout.column(c)..],
                col.iter().map(|v| v.to_le_bytes()),
            );
        }
        // Scores the plugin forgets to write read back as NaN and rank last.
        write_words(
            &mut buf[layout.scores()..],
            std::iter::repeat_n(f32::NAN.to_le_bytes(), n),
        );
        let got = warm
            .score
            .call(&mut *store, n32)
            .map_err(|e| classify(&e, store.data()))?;
        if got != n32 {
            return Err(Fault::WrongLength {
                expected: n as u32,
                got,
            });
        }
        // Memory only grows, so the buffer checked above is still in bounds.
        let mem = warm.memory.data(&*store);
        let at = ptr as usize + layout.scores();
        let scores = mem
            .get(at..at + 4 * n)
            .ok_or(Fault::BadPointer {
                ptr,
                bytes: layout.bytes(),
                memory: mem.len(),
            })?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let fuel_used = limits
            .fuel
            .map(|budget| budget.saturating_sub(store.get_fuel().unwrap_or(0)));
        Ok(Output {
            scores,
            fuel_used,
            memory_bytes: warm.memory.data_size(&*store),
            ..Output::default()
        })
    }
}

/// Copy 4-byte little-endian words into `dst`, front to back.
fn write_words(dst: &mut [u8], words: impl Iterator<Item = [u8; 4]>) {
    for (d, w) in dst.chunks_exact_mut(4).zip(words) {
        d.copy_from_slice(&w);
    }
}
