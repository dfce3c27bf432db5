//! The one wasmtime engine of a store: its configuration, the epoch ticker thread, the cache of
//! compiled modules and the checks a module passes before anything runs it.

use std::sync::Arc;
#[cfg(feature = "plugins")]
use std::{collections::HashMap, sync::Mutex, time::Duration};

#[cfg(feature = "plugins")]
use wasmtime::{
    Caller, Config, Engine, ExternType, Linker, Module, ResourceLimiter, StoreLimits,
    StoreLimitsBuilder, ValType,
};

#[cfg(feature = "plugins")]
use super::abi;
use super::PluginLimits;
#[cfg(feature = "plugins")]
use crate::error::Error;
use crate::error::Result;

#[cfg(feature = "plugins")]
/// How many compiled modules the cache keeps; reloading one of these skips compilation.
const CACHE_MODULES: usize = 32;

/// One log line a plugin wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// 0 error, 1 warn, 2 info, 3 debug, 4 trace (anything else is trace).
    pub level: i32,
    /// The text, cut to [`PluginLimits::log_bytes`] and lossily decoded as UTF-8.
    pub text: String,
}

#[cfg(feature = "plugins")]
/// What a wasmtime `Store` carries for one plugin instance.
pub(crate) struct Guest {
    pub limiter: Guard,
    pub plugin: Arc<str>,
    /// Lines logged in the current call (the rate limit counts these).
    pub logs_this_call: u32,
    /// Lines dropped by the rate limit since the instance was made.
    pub logs_dropped: u64,
    /// Lines kept for the runner to print; `None` on the serving path, where lines only go to
    /// `tracing`.
    pub capture: Option<Vec<LogLine>>,
    /// The last error-level line of the current call: a trap or a refused config is reported
    /// with it (the SDK's panic hook logs the panic's message and location at that level).
    pub last_error: Option<String>,
    log_bytes: usize,
    logs_per_call: u32,
}

#[cfg(feature = "plugins")]
impl Guest {
    pub(crate) fn new(plugin: Arc<str>, limits: &PluginLimits, capture: bool) -> Guest {
        Guest {
            limiter: Guard {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .memories(1)
                    .tables(4)
                    .table_elements(limits.table_elements)
                    .instances(1)
                    .trap_on_grow_failure(true)
                    .build(),
                refused: false,
            },
            plugin,
            logs_this_call: 0,
            last_error: None,
            logs_dropped: 0,
            capture: capture.then(Vec::new),
            log_bytes: limits.log_bytes,
            logs_per_call: limits.logs_per_call,
        }
    }
}

#[cfg(feature = "plugins")]
/// `StoreLimits`, plus a note that it refused a growth: a refused growth traps, and the note
/// is how the fault is reported as "memory limit" rather than a generic trap.
pub(crate) struct Guard {
    limits: StoreLimits,
    pub refused: bool,
}

#[cfg(feature = "plugins")]
impl ResourceLimiter for Guard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.limits.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.refused = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.limits.table_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.refused = true;
        }
        r
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }
    fn tables(&self) -> usize {
        self.limits.tables()
    }
    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The engine and everything shared by the plugins it runs.
#[cfg(feature = "plugins")]
pub struct Host {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Guest>,
    pub(crate) limits: PluginLimits,
    cache: Mutex<HashMap<u64, Module>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Without the `plugins` feature there is no engine: only the limits, and every load is
/// refused ([`super::PluginVersion`]).
#[cfg(not(feature = "plugins"))]
pub struct Host {
    pub(crate) limits: PluginLimits,
}

#[cfg(not(feature = "plugins"))]
impl Host {
    /// A host without an engine (this build has no WebAssembly runtime).
    pub fn new(limits: PluginLimits) -> Result<Arc<Host>> {
        Ok(Arc::new(Host { limits }))
    }
}

#[cfg(feature = "plugins")]
impl Host {
    /// Start an engine with `limits`, and its epoch ticker thread (which stops when the last
    /// handle on the engine is dropped).
    pub fn new(limits: PluginLimits) -> Result<Arc<Host>> {
        let fail = |e: wasmtime::Error| Error::PluginRefused {
            reason: format!("the WebAssembly engine could not start: {e:#}"),
        };
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .consume_fuel(limits.fuel.is_some())
            .max_wasm_stack(limits.stack_bytes)
            // The ABI is scalar over one 32-bit memory: proposals it does not need stay off
            // (GC, threads and the component model are not even compiled in).
            .wasm_multi_memory(false)
            .wasm_memory64(false);
        let engine = Engine::new(&cfg).map_err(fail)?;
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(abi::IMPORT_LOG.0, abi::IMPORT_LOG.1, log)
            .map_err(fail)?;
        spawn_ticker(&engine, limits.tick)?;
        Ok(Arc::new(Host {
            engine,
            linker,
            limits,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Compile `wasm` (binary, or WAT text) once per content hash, checking its size and
    /// imports. Returns the module and its hash.
    pub(crate) fn compile(&self, name: &str, wasm: &[u8]) -> Result<(Module, u64)> {
        let reject = |reason: String| Error::PluginRejected {
            name: name.to_string(),
            reason,
        };
        if wasm.len() > self.limits.max_module_bytes {
            return Err(reject(format!(
                "the module is {} bytes, over the {}-byte cap (PluginLimits::max_module_bytes)",
                wasm.len(),
                self.limits.max_module_bytes
            )));
        }
        // WAT text becomes binary first, so the shape checks below see what will compile.
        let binary = if wasm.starts_with(b"\0asm") {
            std::borrow::Cow::Borrowed(wasm)
        } else {
            wat::parse_bytes(wasm).map_err(|e| {
                reject(format!(
                    "neither a WebAssembly binary nor valid WAT text: {e}"
                ))
            })?
        };
        let wasm = &binary[..];
        let hash = xxhash_rust::xxh3::xxh3_64(wasm);
        let cached = self.cache.lock().ok().and_then(|c| c.get(&hash).cloned());
        let module = match cached {
            Some(m) => m,
            None => {
                check_shape(&self.limits, wasm).map_err(reject)?;
                let m = Module::new(&self.engine, wasm)
                    .map_err(|e| reject(format!("not a valid WebAssembly module: {e:#}")))?;
                if let Ok(mut c) = self.cache.lock() {
                    if c.len() >= CACHE_MODULES {
                        c.clear();
                    }
                    c.insert(hash, m.clone());
                }
                m
            }
        };
        check_imports(&module).map_err(reject)?;
        check_exports(&module).map_err(reject)?;
        Ok((module, hash))
    }
}

#[cfg(feature = "plugins")]
/// A compile bomb fits under any size cap: compiling takes time and memory in proportion to
/// the number of functions and to block nesting, not to bytes (100,000 empty functions in
/// 773 KiB took 5-15 s and 600 MB; 300,000 nested blocks, 300 MB). Count both, and each
/// function's size, with a parser that allocates nothing per operator, before the compiler
/// sees the module.
fn check_shape(limits: &PluginLimits, wasm: &[u8]) -> Result<(), String> {
    use wasmtime::wasmparser::{Operator, Parser, Payload};
    let bad =
        |e: wasmtime::wasmparser::BinaryReaderError| format!("not a valid WebAssembly module: {e}");
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(bad)? {
            Payload::CodeSectionStart { count, .. } => {
                let functions = count as usize;
                if functions > limits.max_functions {
                    return Err(format!(
                        "it defines {functions} functions, over the cap of {} \
                         (PluginLimits::max_functions); compiling each costs time and memory",
                        limits.max_functions
                    ));
                }
            }
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len();
                if size > limits.max_function_bytes {
                    return Err(format!(
                        "one function body is {size} bytes, over the cap of {} \
                         (PluginLimits::max_function_bytes)",
                        limits.max_function_bytes
                    ));
                }
                let mut ops = body.get_operators_reader().map_err(bad)?;
                let mut depth = 0usize;
                while !ops.eof() {
                    match ops.read().map_err(bad)? {
                        Operator::Block { .. }
                        | Operator::Loop { .. }
                        | Operator::If { .. }
                        | Operator::TryTable { .. } => {
                            depth += 1;
                            if depth > limits.max_nesting {
                                return Err(format!(
                                    "a function nests blocks more than {} deep \
                                     (PluginLimits::max_nesting); compiling that costs memory \
                                     in proportion to the depth",
                                    limits.max_nesting
                                ));
                            }
                        }
                        Operator::End => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(feature = "plugins")]
/// Advance the engine's epoch every `tick` until the engine is gone.
fn spawn_ticker(engine: &Engine, tick: Duration) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("recostore-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        })
        .map(|_| ())
        .map_err(|e| Error::PluginRefused {
            reason: format!("could not start the plugin epoch thread: {e}"),
        })
}

#[cfg(feature = "plugins")]
/// The `env.log` import: cut, rate-limited, into `tracing` (and the runner's capture).
fn log(mut caller: Caller<'_, Guest>, level: i32, ptr: i32, len: i32) {
    let g = caller.data();
    if g.logs_this_call >= g.logs_per_call {
        caller.data_mut().logs_dropped += 1;
        return;
    }
    let keep = (len.max(0) as usize).min(g.log_bytes);
    let start = ptr as u32 as usize;
    let text = match caller
        .get_export(abi::EXPORT_MEMORY)
        .and_then(|e| e.into_memory())
    {
        Some(mem) => {
            let data = mem.data(&caller);
            match data.get(start..start.saturating_add(keep)) {
                Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                None => "<log pointer out of bounds>".to_string(),
            }
        }
        None => "<plugin exports no memory>".to_string(),
    };
    let g = caller.data_mut();
    g.logs_this_call += 1;
    if level == 0 {
        g.last_error = Some(text.clone());
    }
    let plugin = &*g.plugin;
    match level {
        0 => tracing::error!(target: "recostore::plugin", plugin, "{text}"),
        1 => tracing::warn!(target: "recostore::plugin", plugin, "{text}"),
        2 => tracing::info!(target: "recostore::plugin", plugin, "{text}"),
        3 => tracing::debug!(target: "recostore::plugin", plugin, "{text}"),
        _ => tracing::trace!(target: "recostore::plugin", plugin, "{text}"),
    }
    if let Some(c) = &mut g.capture {
        c.push(LogLine { level, text });
    }
}

#[cfg(feature = "plugins")]
/// Only `env.log(i32, i32, i32)` may be imported.
fn check_imports(module: &Module) -> Result<(), String> {
    for imp in module.imports() {
        let allowed = (imp.module(), imp.name()) == abi::IMPORT_LOG
            && matches!(imp.ty(), ExternType::Func(f)
                if f.params().map(|p| matches!(p, ValType::I32)).eq([true; 3])
                    && f.results().len() == 0);
        if !allowed {
            return Err(format!(
                "it imports `{}.{}`, and the only import allowed is `env.log(i32, i32, i32)`: \
                 build for wasm32-unknown-unknown without WASI",
                imp.module(),
                imp.name()
            ));
        }
    }
    Ok(())
}

#[cfg(feature = "plugins")]
/// The required exports exist with the ABI's signatures; the optional pair comes together.
fn check_exports(module: &Module) -> Result<(), String> {
    use ValType::{I32, I64};
    let func = |name: &str| match module.get_export(name) {
        Some(ExternType::Func(f)) => Some(f),
        _ => None,
    };
    let sig = |name: &str, params: &[ValType], results: &[ValType]| -> Result<bool, String> {
        let Some(f) = func(name) else {
            return Ok(false);
        };
        let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
            a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
        };
        if same(&mut f.params(), params) && same(&mut f.results(), results) {
            Ok(true)
        } else {
            Err(format!(
                "export `{name}` has the wrong signature; ABI v1 wants {params:?} -> {results:?}"
            ))
        }
    };
    for (name, params, results) in [
        (abi::EXPORT_VERSION, &[][..], &[I32][..]),
        (abi::EXPORT_FEATURES, &[], &[I64]),
        (abi::EXPORT_INPUT, &[I32], &[I32]),
        (abi::EXPORT_SCORE, &[I32], &[I32]),
    ] {
        if !sig(name, params, results)? {
            return Err(format!(
                "it does not export `{name}`, which ABI v1 requires (the SDK's \
                 `export_strategy!` macro writes every export)"
            ));
        }
    }
    if !matches!(
        module.get_export(abi::EXPORT_MEMORY),
        Some(ExternType::Memory(_))
    ) {
        return Err("it does not export its linear memory as `memory`".into());
    }
    let config = sig(abi::EXPORT_CONFIG, &[I32], &[I32])?;
    let init = sig(abi::EXPORT_INIT, &[I32], &[I32])?;
    if config != init {
        return Err(format!(
            "it exports only one of `{}` and `{}`; a plugin that takes a config exports both",
            abi::EXPORT_CONFIG,
            abi::EXPORT_INIT
        ));
    }
    Ok(())
}
