//! One loaded version of a plugin: its pre-linked module, a pool of warm instances and the
//! call path that turns candidate columns into scores, or into a [`Fault`].

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "plugins")]
use std::time::Instant;

#[cfg(feature = "plugins")]
use crossbeam_queue::ArrayQueue;
#[cfg(feature = "plugins")]
use wasmtime::{InstancePre, Memory, TypedFunc};

#[cfg(feature = "plugins")]
use super::abi::{self, Feature, Layout};
use super::abi::{Context, FeatureSet};
#[cfg(feature = "plugins")]
use super::fault::classify;
use super::fault::Counters;
pub use super::fault::{Fault, FaultCounts};
#[cfg(feature = "plugins")]
use super::host::Guest;
use super::host::{Host, LogLine};
use crate::error::{Error, Result};

/// Epoch ticks the load-time checks (first instantiation, init, smoke run) may take: a
/// second at the default 1 ms tick. Generous on purpose: a module that runs away is still
/// caught, but a busy machine at load time does not reject a good plugin, which a per-query
/// deadline of a few milliseconds could.
#[cfg(feature = "plugins")]
const LOAD_TICKS: u64 = 1_000;

/// Why a build without the `plugins` feature refuses every module.
#[cfg(not(feature = "plugins"))]
const NO_RUNTIME: &str =
    "this build of recostore has no WebAssembly runtime (it was built without \
     the `plugins` feature); use a build with it, which the `recostore` binary is";

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
#[cfg(feature = "plugins")]
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
    #[cfg(feature = "plugins")]
    has_init: bool,
    #[cfg(feature = "plugins")]
    capture: bool,
    #[cfg(feature = "plugins")]
    pre: InstancePre<Guest>,
    #[cfg(feature = "plugins")]
    host: Arc<Host>,
    #[cfg(feature = "plugins")]
    pool: ArrayQueue<Warm>,
    /// The shadow worker's instances, apart from serving's: a shadow that faults throws its
    /// instance away, and must not empty the pool the request path draws from.
    #[cfg(feature = "plugins")]
    shadow_pool: ArrayQueue<Warm>,
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

impl PluginVersion {
    /// Without the `plugins` feature: every module is refused, and says why.
    #[cfg(not(feature = "plugins"))]
    pub(crate) fn load(
        _host: &Arc<Host>,
        name: &str,
        _number: u32,
        _wasm: &[u8],
        _config: &[u8],
        _capture: bool,
        _live: Option<Arc<AtomicUsize>>,
    ) -> Result<PluginVersion> {
        Err(Error::PluginRejected {
            name: name.to_string(),
            reason: NO_RUNTIME.into(),
        })
    }

    /// Without the `plugins` feature no version is ever loaded, so no call is made.
    #[cfg(not(feature = "plugins"))]
    pub fn run(&self, _input: &Input) -> Result<Output, Fault> {
        Err(Fault::Instantiate {
            reason: NO_RUNTIME.into(),
        })
    }

    /// Without the `plugins` feature no version is ever loaded, so no call is made.
    #[cfg(not(feature = "plugins"))]
    pub(crate) fn run_shadow(&self, _input: &Input) -> Result<Output, Fault> {
        Err(Fault::Instantiate {
            reason: NO_RUNTIME.into(),
        })
    }

    /// Compile, link, instantiate, check and smoke-test `wasm` as version `number` of plugin
    /// `name`. `capture` keeps log lines in each [`Output`] (the runner wants them).
    #[cfg(feature = "plugins")]
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
            shadow_pool: ArrayQueue::new(1),
            counters: Counters::default(),
            live,
        };
        let mut warm = v
            .instantiate(LOAD_TICKS)
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
        v.run_within(&smoke, LOAD_TICKS)
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

    #[cfg(feature = "plugins")]
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

    #[cfg(feature = "plugins")]
    /// A fresh instance, initialised with the version's config.
    fn instantiate(&self, ticks: u64) -> Result<Warm, Fault> {
        let limits = &self.host.limits;
        let mut store = wasmtime::Store::new(
            &self.host.engine,
            Guest::new(self.name.clone(), limits, self.capture),
        );
        store.limiter(|g| &mut g.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks);
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
            // The config is capped far below 2 GiB when the plugin is loaded.
            let len = i32::try_from(self.config.len()).unwrap_or(i32::MAX);
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
                let why = store
                    .data_mut()
                    .last_error
                    .take()
                    .unwrap_or_else(|| "it logged no reason".into());
                return Err(fail(format!(
                    "recostore_init rejected its config (status {status}): {why}"
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

    #[cfg(feature = "plugins")]
    /// Score `input`. On success the instance goes back to the pool; on any fault it is
    /// dropped (a trapped instance may hold broken state), the fault is counted, and the
    /// caller falls back.
    pub fn run(&self, input: &Input) -> Result<Output, Fault> {
        self.run_within(input, self.host.limits.deadline_ticks())
    }

    #[cfg(feature = "plugins")]
    /// Score `input` for a shadow: a call this version's counters never see, so that shadow
    /// work can neither disable it nor move its guardrails' figures, with ten times the
    /// deadline, because the shadow worker runs at idle priority and a call it starts may
    /// wait for a core. The caller counts the outcome.
    pub(crate) fn run_shadow(&self, input: &Input) -> Result<Output, Fault> {
        let ticks = self.host.limits.deadline_ticks().saturating_mul(10);
        let started = Instant::now();
        let (result, _, _) = self.call_pooled(&self.shadow_pool, input, ticks);
        result.map(|mut o| {
            o.elapsed = started.elapsed();
            o
        })
    }

    #[cfg(feature = "plugins")]
    /// One call on a warm instance from the pool (or a new one), which goes back to the pool
    /// if the call succeeded. Also says whether the instance was new (a cold start), and how
    /// many log lines the call dropped (a faulting call's too).
    fn call_pooled(
        &self,
        pool: &ArrayQueue<Warm>,
        input: &Input,
        ticks: u64,
    ) -> (Result<Output, Fault>, bool, u64) {
        let warm_start = pool.pop();
        let cold = warm_start.is_none();
        let mut logs_dropped = 0;
        let result = warm_start
            .map_or_else(|| self.instantiate(ticks), Ok)
            .and_then(|mut warm| {
                let out = self.call(&mut warm, input, ticks);
                let g = warm.store.data_mut();
                g.logs_this_call = 0;
                g.last_error = None;
                let dropped = std::mem::take(&mut g.logs_dropped);
                logs_dropped = dropped;
                out.map(|mut o| {
                    o.logs_dropped = dropped;
                    if let Some(c) = &mut warm.store.data_mut().capture {
                        o.logs = std::mem::take(c);
                    }
                    let _ = pool.push(warm);
                    o
                })
            });
        (result, cold, logs_dropped)
    }

    #[cfg(feature = "plugins")]
    /// [`PluginVersion::run`] with a deadline of `ticks` epoch ticks.
    fn run_within(&self, input: &Input, ticks: u64) -> Result<Output, Fault> {
        let started = Instant::now();
        self.counters.calls.fetch_add(1, Relaxed);
        let (result, cold, logs_dropped) = self.call_pooled(&self.pool, input, ticks);
        self.counters.logs_dropped.fetch_add(logs_dropped, Relaxed);
        let elapsed = started.elapsed();
        self.counters
            .nanos
            .fetch_add(crate::narrow::u64_from(elapsed.as_nanos()), Relaxed);
        if !cold {
            self.counters.latency.record(elapsed);
        }
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

    #[cfg(feature = "plugins")]
    /// One call on a warm instance: fill the buffer, score, bounds-check and read.
    fn call(&self, warm: &mut Warm, input: &Input, ticks: u64) -> Result<Output, Fault> {
        let n = input.ids.len();
        let layout = Layout {
            n,
            columns: self.features.len(),
        };
        let limits = &self.host.limits;
        let store = &mut warm.store;
        store.set_epoch_deadline(ticks);
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
        buf[..abi::CONTEXT_BYTES]
            .copy_from_slice(&input.context.encode(crate::narrow::u32_from(n)));
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
                expected: crate::narrow::u32_from(n),
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

#[cfg(feature = "plugins")]
/// Copy 4-byte little-endian words into `dst`, front to back.
fn write_words(dst: &mut [u8], words: impl Iterator<Item = [u8; 4]>) {
    for (d, w) in dst.chunks_exact_mut(4).zip(words) {
        d.copy_from_slice(&w);
    }
}

#[cfg(all(test, not(feature = "plugins")))]
mod without_runtime {
    use super::*;
    use crate::PluginLimits;

    /// A build without the `plugins` feature refuses every module and says why, instead of
    /// failing somewhere later.
    #[test]
    fn every_load_is_refused_and_says_why() {
        let host = Host::new(PluginLimits::default()).expect("host");
        let wat = br#"(module (func (export "recostore_abi_version") (result i32) i32.const 1))"#;
        match PluginVersion::load(&host, "p", 1, wat, b"", false, None) {
            Err(e @ Error::PluginRejected { .. }) => {
                assert!(e.to_string().contains("`plugins` feature"), "{e}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
