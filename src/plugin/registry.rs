//! Plugins by name: load, swap, roll back, unload and auto-disable, without a restart.
//!
//! The whole table (plugins and slots) is one immutable value behind an `ArcSwap`. Queries
//! load it without a lock and keep an `Arc` of the version they call, so a swap published in
//! the middle of a call never touches that call, and the old version is freed when its last
//! call returns. Writers (load, swap, slot changes) serialise on a mutex, build a new table
//! and publish it in one store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::guard::{self, Guardrails};
use super::host::Host;
use super::persist::{self, StoredPlugin, StoredVersion};
use super::shadow::{Comparison, Shadows};
use super::slots::{Attribution, Mode, Route, Slot, Strategy, Variant, VariantStats, BUILTIN};
use super::version::{Fault, FaultCounts, PluginVersion};
use super::{check_name, PluginLimits};
use crate::error::{Error, Result};
use crate::event::Event;

/// How many (user, slot) answers attribution remembers.
const SHOWN_CAP: usize = 1 << 20;

#[derive(Clone)]
struct Entry {
    current: Arc<PluginVersion>,
    previous: Option<Arc<PluginVersion>>,
    disabled: Option<String>,
    last_number: u32,
    /// Loaded with [`Plugins::load_transient`]: never written to the store, whatever later
    /// happens to it (a fault that disables it, a rollback).
    transient: bool,
    /// The watch of a promotion and the rollbacks the guardrails made (`guard`).
    guard: Arc<guard::Stored>,
    /// Which bands of impressions the CTR and conversion tests have looked at, for this
    /// watch (memory only: see `guard::look`).
    looks: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Default)]
struct Table {
    plugins: BTreeMap<String, Entry>,
    slots: BTreeMap<String, Arc<Slot>>,
}

/// A plugin as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// The version serving (or that would serve, if disabled).
    pub version: u32,
    /// xxh3 of its module bytes, hex.
    pub hash: String,
    /// The feature columns it reads.
    pub features: Vec<&'static str>,
    /// The version a rollback would restore.
    pub previous: Option<u32>,
    /// Why it is disabled, if it is; queries are ranked by the built-in ranker meanwhile.
    pub disabled: Option<String>,
    /// Calls to the serving version.
    pub calls: u64,
    /// Faults of the serving version, by kind.
    pub faults: FaultCounts,
    /// Scores that were NaN or infinite (NaN ranks last; infinities are clamped).
    pub non_finite_scores: u64,
    /// Log lines dropped by the rate limit.
    pub logs_dropped: u64,
    /// Mean wall time per call, in microseconds.
    pub mean_call_us: f64,
    /// Slots that route to it.
    pub slots: Vec<String>,
    /// The promotion under watch, if the serving version was promoted with guardrails
    /// ([`Plugins::promote`]) and its window has not ended.
    pub watch: Option<guard::Watch>,
    /// The rollbacks the guardrails made, oldest first (the last 100).
    pub rollbacks: Vec<guard::Rollback>,
}

/// Who ranks one query, chosen from the table at query time.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub version: Option<Arc<PluginVersion>>,
    pub strategy: String,
    pub slot: Option<String>,
    /// Set when the chosen plugin is disabled, so the built-in ranker serves.
    pub disabled: bool,
    /// On an interleaved slot, the second team (this choice is the first).
    pub partner: Option<Box<Choice>>,
    /// The slot's shadows sampled for this answer.
    pub shadows: Vec<ShadowPick>,
    /// Draws for the interleaving's coin.
    pub seed: u64,
    /// Set for a shadow's ranking: its plugin calls bypass the version's counters.
    pub shadow: bool,
}

/// A shadow sampled for one answer: who ranks for it.
#[derive(Debug, Clone)]
pub(crate) struct ShadowPick {
    pub strategy: String,
    pub version: Option<Arc<PluginVersion>>,
}

/// A uniform draw for sampling and coins: SplitMix64 over a process-wide sequence.
fn draw() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0x5eed);
    crate::splitmix::SplitMix64(SEQ.fetch_add(1, Relaxed)).next_u64()
}

/// The plugin registry of one store ([`crate::Store::plugins`]).
#[derive(Clone)]
pub struct Plugins {
    shared: Arc<Shared>,
}

struct Shared {
    limits: PluginLimits,
    host: Mutex<Option<Arc<Host>>>,
    table: ArcSwap<Table>,
    write: Mutex<()>,
    live: Arc<AtomicUsize>,
    attribution: Attribution,
    /// The shadow worker and its figures.
    shadows: Shadows,
    /// Where changes are persisted (the store's tree); unset for a standalone registry.
    tree: OnceLock<persist::Backing>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("plugins", &self.shared.table.load().plugins.keys())
            .finish_non_exhaustive()
    }
}

fn not_found(name: &str) -> Error {
    Error::PluginNotFound {
        what: "plugin",
        name: name.to_string(),
        hint:
            "load it first; Plugins::list (the admin socket's `plugin.list`) shows what is loaded",
    }
}

impl Plugins {
    /// An empty registry; the wasm engine starts with the first load.
    pub fn new(limits: PluginLimits) -> Plugins {
        Plugins {
            shared: Arc::new(Shared {
                shadows: Shadows::new(limits.shadow_queue, limits.shadow_cpu),
                limits,
                host: Mutex::new(None),
                table: ArcSwap::from_pointee(Table::default()),
                write: Mutex::new(()),
                live: Arc::new(AtomicUsize::new(0)),
                attribution: Attribution::new(SHOWN_CAP),
                tree: OnceLock::new(),
            }),
        }
    }

    /// The limits every plugin runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.shared.limits
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        // A writer that panicked left the table as it was (tables are built, then stored),
        // so the poison carries no broken state.
        self.shared.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn host(&self) -> Result<Arc<Host>> {
        let mut h = self.shared.host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = &*h {
            return Ok(h.clone());
        }
        let host = Host::new(self.shared.limits.clone())?;
        *h = Some(host.clone());
        Ok(host)
    }

    fn publish(&self, f: impl FnOnce(&mut Table)) {
        let mut t = Table::clone(&self.shared.table.load());
        f(&mut t);
        self.shared.table.store(Arc::new(t));
    }

    /// Persist plugin `name` as `entry` (`None`: removed), if this registry belongs to a store.
    fn save(&self, name: &str, entry: Option<&Entry>) -> Result<()> {
        let Some(tree) = self.shared.tree.get() else {
            return Ok(());
        };
        if entry.is_some_and(|e| e.transient) {
            return Ok(());
        }
        let version = |v: &PluginVersion| {
            let (wasm, config) = v.source();
            StoredVersion {
                number: v.number(),
                wasm: wasm.to_vec(),
                config: config.to_vec(),
            }
        };
        let stored = entry.map(|e| StoredPlugin {
            current: version(&e.current),
            previous: e.previous.as_deref().map(version),
            last_number: e.last_number,
            disabled: e.disabled.clone(),
        });
        let guard = entry
            .map(|e| &*e.guard)
            .filter(|g| g.watch.is_some() || !g.rollbacks.is_empty());
        tree.save_plugin(name, stored.as_ref(), guard)
    }

    /// Run `f` while no plugin or slot change can be written (a backup copies the records
    /// and the module files they name as one state).
    pub(crate) fn hold_writes<T>(&self, f: impl FnOnce() -> T) -> T {
        let _w = self.writer();
        f()
    }

    /// Load the plugins and slots persisted in `tree` and persist every later change there.
    /// A stored plugin that no longer loads (stricter limits, say) is reported and left out;
    /// the store still opens.
    pub(crate) fn attach(&self, tree: crate::durable::Db, dir: &std::path::Path) -> Result<()> {
        let tree = persist::Backing::new(tree, dir)?;
        let persist::Stored { plugins, slots } = tree.load()?;
        let (figures, experiments) = tree.load_figures()?;
        self.shared.attribution.restore(figures, experiments.pairs);
        self.shared.shadows.restore(experiments.shadows);
        let mut guards: BTreeMap<String, guard::Stored> = tree.load_guards()?.into_iter().collect();
        if !plugins.is_empty() || !slots.is_empty() {
            let _w = self.writer();
            let mut table = Table::default();
            if !plugins.is_empty() {
                let host = self.host()?;
                for (name, p) in plugins {
                    let load = |v: &StoredVersion| {
                        PluginVersion::load(
                            &host,
                            &name,
                            v.number,
                            &v.wasm,
                            &v.config,
                            false,
                            Some(self.shared.live.clone()),
                        )
                        .map(Arc::new)
                    };
                    match (load(&p.current), p.previous.as_ref().map(load).transpose()) {
                        (Ok(current), Ok(previous)) => {
                            let mut g = guards.remove(&name).unwrap_or_default();
                            // A watch is for the version serving; any other is stale.
                            if g.watch
                                .as_ref()
                                .is_some_and(|w| w.version != current.number())
                            {
                                g.watch = None;
                            }
                            let entry = Entry {
                                current,
                                previous,
                                disabled: p.disabled,
                                last_number: p.last_number,
                                transient: false,
                                guard: Arc::new(g),
                                looks: Arc::default(),
                            };
                            table.plugins.insert(name, entry);
                        }
                        (Err(e), _) | (_, Err(e)) => tracing::error!(
                            target: "recostore::plugin",
                            plugin = %name,
                            error = %e,
                            "a stored plugin did not load and is not serving; load it again or unload it"
                        ),
                    }
                }
            }
            for (name, variants) in slots {
                let loaded = |v: &Variant| match &v.strategy {
                    Strategy::Plugin(p) => table.plugins.contains_key(p),
                    Strategy::Builtin => true,
                };
                // A shadow that did not load serves no one: the slot serves on, and the
                // shadow resumes when its plugin is loaded again (`choose` skips it meanwhile).
                for v in variants
                    .iter()
                    .filter(|v| v.mode == Mode::Shadow && !loaded(v))
                {
                    tracing::warn!(
                        target: "recostore::plugin",
                        slot = %name,
                        shadow = v.strategy.name(),
                        "a stored slot's shadow did not load; the slot serves without it until it is loaded"
                    );
                }
                let known = variants.iter().all(|v| v.mode == Mode::Shadow || loaded(v));
                match Slot::new(&name, variants).ok().filter(|_| known) {
                    Some(s) => {
                        table.slots.insert(name, Arc::new(s));
                    }
                    None => tracing::error!(
                        target: "recostore::plugin",
                        slot = %name,
                        "a stored slot routes to a plugin that did not load; its queries use the built-in ranker"
                    ),
                }
            }
            self.shared.table.store(Arc::new(table));
        }
        let _ = self.shared.tree.set(tree);
        Ok(())
    }

    /// Load `wasm` (a binary module, or WAT text) as the next version of plugin `name` and
    /// publish it: the first load of a name, or a hot swap of a loaded one. The module is
    /// compiled (once per content hash), checked and smoke-tested before anything is
    /// published; on any failure the version serving before keeps serving.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<PluginInfo> {
        self.load_with_config(name, wasm, &[])
    }

    /// [`Plugins::load`] with a config the plugin reads in `recostore_init` (for the SDK
    /// strategies, a JSON object).
    pub fn load_with_config(&self, name: &str, wasm: &[u8], config: &[u8]) -> Result<PluginInfo> {
        self.load_inner(name, wasm, config, true, None)
    }

    /// [`Plugins::load_with_config`] for this handle's life only: the version serves like any
    /// other but is never written to the store, so it is gone when the store closes and a
    /// later open neither compiles nor lists it. For one-off queries (`query --plugin`).
    pub fn load_transient(&self, name: &str, wasm: &[u8], config: &[u8]) -> Result<PluginInfo> {
        self.load_inner(name, wasm, config, false, None)
    }

    /// Load and publish the next version of `name`; with `guardrails`, watched against the
    /// version it replaces (which must exist), all under one hold of the writer's lock and
    /// stored in one batch, so the version, its watch and its baseline never disagree.
    fn load_inner(
        &self,
        name: &str,
        wasm: &[u8],
        config: &[u8],
        persist: bool,
        guardrails: Option<Guardrails>,
    ) -> Result<PluginInfo> {
        check_name(name).map_err(|reason| Error::PluginRejected {
            name: name.to_string(),
            reason,
        })?;
        let host = self.host()?;
        let _w = self.writer();
        let table = self.shared.table.load_full();
        let old = table.plugins.get(name);
        if guardrails.is_some() && old.is_none() {
            return Err(Error::PluginNotFound {
                what: "plugin",
                name: name.to_string(),
                hint: "promote replaces a loaded plugin, which becomes the version rolled back \
                       to; load the first version with Plugins::load (`plugin.load`)",
            });
        }
        if let Some(why) = old
            .filter(|_| guardrails.is_some())
            .and_then(|e| e.disabled.as_ref())
        {
            return Err(Error::PluginRefused {
                reason: format!(
                    "`{name}` is disabled ({why}); a promotion is judged against the version it \
                     replaces, and a rollback would restore that one: enable it or roll it back \
                     first, or swap without guardrails"
                ),
            });
        }
        let number = old.map_or(0, |e| e.last_number) + 1;
        let v = PluginVersion::load(
            &host,
            name,
            number,
            wasm,
            config,
            false,
            Some(self.shared.live.clone()),
        )?;
        let entry = Entry {
            current: Arc::new(v),
            previous: table.plugins.get(name).map(|e| e.current.clone()),
            disabled: None,
            last_number: number,
            transient: !persist,
            // A load or swap ends any watch (the version it watched no longer serves); the
            // rollbacks stay on record. A promotion starts one, from the old version's
            // figures now.
            guard: Arc::new(guard::Stored {
                watch: guardrails.zip(old).map(|(guardrails, e)| guard::Watch {
                    version: number,
                    previous: e.current.number(),
                    previous_disabled: e.disabled.clone(),
                    promoted_at: guard::now_secs(),
                    guardrails,
                    baseline: guard::Baseline {
                        calls: e.current.calls(),
                        faults: e.current.faults().total(),
                        p99_us: e.current.counters.latency.latency().p99_us,
                    },
                }),
                rollbacks: old.map(|e| e.guard.rollbacks.clone()).unwrap_or_default(),
            }),
            looks: Arc::default(),
        };
        self.save(name, Some(&entry))?;
        self.publish(|t| {
            t.plugins.insert(name.to_string(), entry);
        });
        tracing::info!(target: "recostore::plugin", plugin = name, version = number, "published");
        self.info(name)
    }

    /// Like [`Plugins::load`], but only for a plugin already loaded: a swap that cannot
    /// create a new name by a typo.
    pub fn swap(&self, name: &str, wasm: &[u8]) -> Result<PluginInfo> {
        if !self.shared.table.load().plugins.contains_key(name) {
            return Err(not_found(name));
        }
        self.load(name, wasm)
    }

    /// Serve the previous version again (the current one becomes the previous, so a second
    /// rollback rolls forward). Also re-enables the plugin.
    pub fn rollback(&self, name: &str) -> Result<PluginInfo> {
        let _w = self.writer();
        let table = self.shared.table.load_full();
        let e = table.plugins.get(name).ok_or_else(|| not_found(name))?;
        let Some(prev) = e.previous.clone() else {
            return Err(Error::PluginNotFound {
                what: "previous version of",
                name: name.to_string(),
                hint: "only one version was ever loaded under this name; load the version you want instead",
            });
        };
        let entry = Entry {
            current: prev,
            previous: Some(e.current.clone()),
            disabled: None,
            last_number: e.last_number,
            transient: e.transient,
            guard: Arc::new(guard::Stored {
                watch: None,
                rollbacks: e.guard.rollbacks.clone(),
            }),
            looks: Arc::default(),
        };
        self.save(name, Some(&entry))?;
        self.publish(|t| {
            t.plugins.insert(name.to_string(), entry);
        });
        tracing::info!(target: "recostore::plugin", plugin = name, "rolled back");
        self.info(name)
    }

    /// Remove plugin `name` and both its versions (they are freed when calls in flight
    /// return). Refused while a slot routes to it.
    pub fn unload(&self, name: &str) -> Result<()> {
        let _w = self.writer();
        let table = self.shared.table.load_full();
        if !table.plugins.contains_key(name) {
            // A stored plugin that failed to load at open can still be removed.
            if let Some(tree) = self.shared.tree.get() {
                if tree.has_plugin(name)? {
                    return self.save(name, None);
                }
            }
            return Err(not_found(name));
        }
        let used: Vec<&String> = table
            .slots
            .iter()
            .filter(|(_, s)| s.variants.iter().any(|v| v.strategy.name() == name))
            .map(|(n, _)| n)
            .collect();
        if !used.is_empty() {
            return Err(Error::PluginRefused {
                reason: format!(
                    "plugin `{name}` serves slot(s) {used:?}; route those slots elsewhere \
                     (set_slot) before unloading it"
                ),
            });
        }
        self.save(name, None)?;
        self.publish(|t| {
            t.plugins.remove(name);
        });
        tracing::info!(target: "recostore::plugin", plugin = name, "unloaded");
        Ok(())
    }

    /// Serve a disabled plugin again, with its fault streak reset.
    pub fn enable(&self, name: &str) -> Result<PluginInfo> {
        let _w = self.writer();
        let table = self.shared.table.load_full();
        let mut e = table
            .plugins
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        e.current.counters.in_a_row.store(0, Relaxed);
        e.disabled = None;
        self.save(name, Some(&e))?;
        self.publish(|t| {
            t.plugins.insert(name.to_string(), e);
        });
        self.info(name)
    }

    /// Route slot `slot` to `variants` by weight (replacing its routing). Every plugin named
    /// must be loaded; `builtin` names the built-in ranker.
    pub fn set_slot(&self, slot: &str, variants: Vec<Variant>) -> Result<()> {
        check_name(slot).map_err(|reason| Error::PluginRefused {
            reason: format!("bad slot name `{slot}`: {reason}"),
        })?;
        let _w = self.writer();
        let table = self.shared.table.load_full();
        for v in &variants {
            if let Strategy::Plugin(p) = &v.strategy {
                if !table.plugins.contains_key(p) {
                    return Err(not_found(p));
                }
            }
        }
        let s = Slot::new(slot, variants).map_err(|reason| Error::PluginRefused { reason })?;
        if let Some(tree) = self.shared.tree.get() {
            tree.save_slot(slot, Some(&s.variants))?;
        }
        self.publish(|t| {
            t.slots.insert(slot.to_string(), Arc::new(s));
        });
        Ok(())
    }

    /// Stop routing `slot`; its queries are ranked by the built-in ranker.
    pub fn remove_slot(&self, slot: &str) -> Result<()> {
        let _w = self.writer();
        if !self.shared.table.load().slots.contains_key(slot) {
            return Err(Error::PluginNotFound {
                what: "slot",
                name: slot.to_string(),
                hint: "Plugins::slots lists the slots that are routed",
            });
        }
        if let Some(tree) = self.shared.tree.get() {
            tree.save_slot(slot, None)?;
        }
        self.publish(|t| {
            t.slots.remove(slot);
        });
        Ok(())
    }

    /// Every routed slot and its variants.
    pub fn slots(&self) -> Vec<(String, Vec<Variant>)> {
        let t = self.shared.table.load();
        t.slots
            .iter()
            .map(|(n, s)| (n.clone(), s.variants.clone()))
            .collect()
    }

    /// Impressions, clicks, purchases, CTR and conversion per variant of `slot` (of every
    /// slot when `None`).
    pub fn variant_stats(&self, slot: Option<&str>) -> Vec<VariantStats> {
        let mut out = self.shared.attribution.stats(slot);
        let t = self.shared.table.load();
        for key in self.shared.shadows.keys() {
            if slot.is_some_and(|s| s != key.0) {
                continue;
            }
            // The rate it is sampled at now; none if the slot no longer shadows it.
            // The rate it is sampled at now: none if the slot no longer shadows it, or if
            // this is the figures of a version that no longer serves.
            let current = match key.1.as_str() {
                BUILTIN => Some(0),
                p => t
                    .plugins
                    .get(p)
                    .filter(|e| e.disabled.is_none())
                    .map(|e| e.current.number()),
            };
            let sample = t
                .slots
                .get(&key.0)
                .and_then(|s| s.shadows().find(|v| v.strategy.name() == key.1))
                .filter(|_| current == Some(key.2))
                .map(Variant::sample_rate);
            if let Some(stats) = self.shared.shadows.stats(&key, sample) {
                out.push(VariantStats {
                    slot: key.0,
                    strategy: key.1,
                    version: key.2,
                    mode: Mode::Shadow,
                    serves: 0,
                    impressions: 0,
                    clicks: 0,
                    purchases: 0,
                    fallbacks: 0,
                    ctr: 0.0,
                    conversion: 0.0,
                    interleave: None,
                    shadow: Some(stats),
                });
            }
        }
        out
    }

    /// Every loaded plugin.
    pub fn list(&self) -> Vec<PluginInfo> {
        let t = self.shared.table.load();
        t.plugins.iter().map(|(n, e)| info(&t, n, e)).collect()
    }

    /// One loaded plugin.
    pub fn info(&self, name: &str) -> Result<PluginInfo> {
        let t = self.shared.table.load();
        let e = t.plugins.get(name).ok_or_else(|| not_found(name))?;
        Ok(info(&t, name, e))
    }

    /// Plugin versions alive in memory, published or still finishing a call. After a swap
    /// and once calls in flight return, this is the current plus previous versions.
    pub fn live_versions(&self) -> usize {
        self.shared.live.load(Relaxed)
    }

    /// The serving version of `name`, if loaded and enabled.
    pub fn current(&self, name: &str) -> Option<Arc<PluginVersion>> {
        let t = self.shared.table.load();
        let e = t.plugins.get(name)?;
        e.disabled.is_none().then(|| e.current.clone())
    }

    /// Pick who ranks a query: the named strategy, else the slot's variant for `user`,
    /// else the built-in ranker. An unknown slot is served by the built-in ranker (apps may
    /// name slots before operators route them); an unknown plugin name is an error.
    pub(crate) fn choose(
        &self,
        strategy: Option<&str>,
        slot: Option<&str>,
        user: Option<&str>,
    ) -> Result<Choice> {
        let t = self.shared.table.load();
        let routed = slot.and_then(|s| t.slots.get(s));
        let pick = |name: &str| -> Result<Choice> {
            let mut choice = Choice {
                version: None,
                strategy: name.to_string(),
                slot: slot.map(str::to_string),
                disabled: false,
                partner: None,
                shadows: Vec::new(),
                seed: 0,
                shadow: false,
            };
            if name != BUILTIN {
                let e = t.plugins.get(name).ok_or_else(|| not_found(name))?;
                if e.disabled.is_some() {
                    choice.disabled = true;
                } else {
                    choice.version = Some(e.current.clone());
                }
            }
            Ok(choice)
        };
        let mut choice = match (strategy, routed) {
            (Some(s), _) => return pick(s),
            (None, None) => return pick(BUILTIN),
            (None, Some(s)) => match s.route(user) {
                Route::One(v) => pick(v.strategy.name())?,
                Route::Interleave(a, b) => {
                    let mut c = pick(a.strategy.name())?;
                    c.partner = Some(Box::new(pick(b.strategy.name())?));
                    c.seed = draw();
                    c
                }
            },
        };
        if let Some(s) = routed {
            for v in s.shadows() {
                // A draw in [0, 1) below the rate: 53 bits, as an f64 holds them exactly.
                let u = (draw() >> 11) as f64 / (1u64 << 53) as f64;
                if u >= v.sample_rate() {
                    continue;
                }
                let version = match &v.strategy {
                    Strategy::Builtin => None,
                    Strategy::Plugin(p) => match t.plugins.get(p) {
                        Some(e) if e.disabled.is_none() => Some(e.current.clone()),
                        // Disabled or gone: nothing of it to compare.
                        _ => continue,
                    },
                };
                choice.shadows.push(ShadowPick {
                    strategy: v.strategy.name().to_string(),
                    version,
                });
            }
        }
        Ok(choice)
    }

    /// Queue `run` on the shadow worker for `pick` on `slot` (or drop it, counted, when the
    /// queue is full).
    pub(crate) fn shadow(
        &self,
        slot: &str,
        pick: &ShadowPick,
        make: impl FnOnce() -> Box<dyn FnOnce() -> Result<Comparison, Fault> + Send>,
    ) {
        let version = pick.version.as_ref().map_or(0, |v| v.number());
        self.shared
            .shadows
            .submit(slot, &pick.strategy, version, make);
    }

    /// Stop the shadow worker taking tasks and wait for the one it runs (on store close).
    pub(crate) fn close_shadows(&self) {
        self.shared.shadows.close();
    }

    /// The module bytes and config of `name`'s serving version, for a private copy (a replay
    /// ranks with one so that its calls and faults never touch the serving version's figures).
    pub(crate) fn source_of(&self, name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let t = self.shared.table.load();
        let e = t.plugins.get(name).ok_or_else(|| not_found(name))?;
        let (wasm, config) = e.current.source();
        Ok((wasm.to_vec(), config.to_vec()))
    }

    /// Swap in `wasm` (with `config`) as the next version of the loaded plugin `name`, and
    /// watch it against the version it replaces for `guardrails.window_secs`: if it does worse
    /// beyond the bounds ([`guard`]), it is rolled back on its own, with an error-level log and
    /// a record in [`PluginInfo::rollbacks`]. The previous version's calls, faults and p99 up
    /// to now are its baseline.
    pub fn promote(
        &self,
        name: &str,
        wasm: &[u8],
        config: &[u8],
        guardrails: Guardrails,
    ) -> Result<PluginInfo> {
        guardrails.check().map_err(|reason| Error::PluginRefused {
            reason: format!("guardrails for `{name}`: {reason}"),
        })?;
        let info = self.load_inner(name, wasm, config, true, Some(guardrails))?;
        tracing::info!(target: "recostore::plugin", plugin = name, version = info.version,
            "promoted under guardrails");
        Ok(info)
    }

    /// After a call of `v` (on the query path): every 32nd call of a watched version, judge
    /// it against its guardrails, and roll it back if it crossed one. The other calls cost an
    /// atomic load and a modulo; a query whose plugin was not called (no candidates) does not
    /// judge again at the same count.
    pub(crate) fn after_call(&self, v: &Arc<PluginVersion>) {
        let calls = v.calls();
        if !calls.is_multiple_of(32) || v.counters.judged.swap(calls, Relaxed) == calls {
            return;
        }
        let table = self.shared.table.load();
        let Some(e) = table.plugins.get(v.name()) else {
            return;
        };
        let Some(w) = e.guard.watch.as_ref().filter(|w| w.version == v.number()) else {
            return;
        };
        if self.shared.tree.get().is_some_and(|t| t.is_read_only()) {
            // A replica serves the leader's plugins; the leader's guardrails decide.
            return;
        }
        if guard::now_secs() >= w.until() {
            self.end_watch(v, "the window ended; the promotion stands");
            return;
        }
        let (ctr, conversion) = self
            .shared
            .attribution
            .rates(v.name(), w.previous, w.version);
        let now = guard::Now {
            calls,
            faults: v.faults().total(),
            p99_us: v.counters.latency.latency().p99_us,
        };
        let look = guard::look(&w.guardrails, &ctr, &e.looks);
        if let Some(reason) = guard::verdict(
            &w.guardrails,
            &w.baseline,
            &now,
            &ctr,
            &conversion,
            look.map(|(alpha, _)| alpha),
        ) {
            if self.roll_back_watched(v, reason) == Outcome::Busy {
                // The band that found it worse is looked at again by the next check, which
                // acts then: it already rejected once, so this spends no more alpha.
                if let Some((_, bit)) = look {
                    e.looks.fetch_and(!bit, Relaxed);
                }
            }
        }
    }

    /// End the watch of `v` (still serving) without a rollback.
    fn end_watch(&self, v: &Arc<PluginVersion>, why: &str) {
        let Some(_w) = self.try_writer() else {
            return;
        };
        let table = self.shared.table.load_full();
        let Some(e) = table.plugins.get(v.name()) else {
            return;
        };
        if !Arc::ptr_eq(&e.current, v) || e.guard.watch.is_none() {
            return;
        }
        let mut e = e.clone();
        e.guard = Arc::new(guard::Stored {
            watch: None,
            rollbacks: e.guard.rollbacks.clone(),
        });
        if let Err(err) = self.save(v.name(), Some(&e)) {
            tracing::error!(plugin = v.name(), error = %err, "could not persist the end of a watch");
        }
        self.publish(|t| {
            t.plugins.insert(v.name().to_string(), e);
        });
        tracing::info!(target: "recostore::plugin", plugin = v.name(), version = v.number(), "{why}");
    }

    /// Roll the watched version `v` back to the one it replaced, for `reason`.
    fn roll_back_watched(&self, v: &Arc<PluginVersion>, reason: String) -> Outcome {
        // On a query thread: never wait behind a load that is compiling; the next check
        // rolls back instead.
        let Some(_w) = self.try_writer() else {
            return Outcome::Busy;
        };
        let table = self.shared.table.load_full();
        let Some(e) = table.plugins.get(v.name()) else {
            return Outcome::Impossible;
        };
        let Some(prev) = e.previous.clone() else {
            return Outcome::Impossible;
        };
        let Some(w) = e.guard.watch.as_ref().filter(|w| watching(w, v)) else {
            return Outcome::Impossible;
        };
        if !Arc::ptr_eq(&e.current, v) || prev.number() != w.previous {
            return Outcome::Impossible;
        }
        let mut rollbacks = e.guard.rollbacks.clone();
        rollbacks.push(guard::Rollback {
            from_version: v.number(),
            to_version: prev.number(),
            reason: reason.clone(),
            at: guard::now_secs(),
        });
        if rollbacks.len() > guard::MAX_ROLLBACKS {
            rollbacks.drain(..rollbacks.len() - guard::MAX_ROLLBACKS);
        }
        let entry = Entry {
            current: prev.clone(),
            previous: Some(v.clone()),
            // The version restored comes back as it was: disabled, if it was when promoted
            // over.
            disabled: w.previous_disabled.clone(),
            last_number: e.last_number,
            transient: e.transient,
            guard: Arc::new(guard::Stored {
                watch: None,
                rollbacks,
            }),
            looks: Arc::default(),
        };
        tracing::error!(
            target: "recostore::plugin",
            plugin = v.name(),
            version = v.number(),
            restored = prev.number(),
            "plugin rolled back by its guardrails: {reason}"
        );
        if let Err(err) = self.save(v.name(), Some(&entry)) {
            tracing::error!(plugin = v.name(), error = %err,
                "could not persist a guardrail rollback; it holds until the store closes");
        }
        self.publish(|t| {
            t.plugins.insert(v.name().to_string(), entry);
        });
        Outcome::Done
    }

    /// The writer's lock if free now (query threads never wait for it).
    fn try_writer(&self) -> Option<MutexGuard<'_, ()>> {
        match self.shared.write.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// After a fault of `v`: disable its plugin if the streak reached the limit and `v` is
    /// still the version serving; a version under watch is rolled back instead.
    pub(crate) fn after_fault(&self, v: &Arc<PluginVersion>) {
        let streak = v.faults_in_a_row();
        if streak < u64::from(self.shared.limits.faults_in_a_row) {
            self.after_call(v);
            return;
        }
        let watched = self
            .shared
            .table
            .load()
            .plugins
            .get(v.name())
            .is_some_and(|e| e.guard.watch.as_ref().is_some_and(|w| watching(w, v)));
        let replica = self.shared.tree.get().is_some_and(|t| t.is_read_only());
        // A promoted version under watch goes back to the one before it, which served well,
        // instead of leaving the built-in ranker to serve. If that cannot happen now, it is
        // disabled as any other.
        if watched && !replica {
            let why = format!("{streak} faults in a row (counts: {:?})", v.faults());
            match self.roll_back_watched(v, why) {
                // Busy: the next fault (the streak only grows) rolls back instead.
                Outcome::Done | Outcome::Busy => return,
                Outcome::Impossible => {}
            }
        }
        // This runs on a query thread: never wait behind a load that is compiling. If a
        // writer is busy, the next fault (the streak only grows) disables the plugin instead.
        let _w = match self.shared.write.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let table = self.shared.table.load_full();
        let Some(e) = table.plugins.get(v.name()) else {
            return;
        };
        if !Arc::ptr_eq(&e.current, v) || e.disabled.is_some() {
            return;
        }
        let reason = format!(
            "disabled after {streak} faults in a row (last counts: {:?}); fix it and load a \
             new version, roll back, or enable it",
            v.faults()
        );
        tracing::error!(
            target: "recostore::plugin",
            plugin = v.name(),
            version = v.number(),
            "plugin {reason}; the built-in ranker serves its queries"
        );
        let mut e = e.clone();
        e.disabled = Some(reason);
        if let Err(err) = self.save(v.name(), Some(&e)) {
            tracing::error!(plugin = v.name(), error = %err, "could not persist the disabled state");
        }
        self.publish(|t| {
            t.plugins.insert(v.name().to_string(), e);
        });
    }

    /// Count an answer served through a slot.
    pub(crate) fn served(
        &self,
        choice: &Choice,
        user: Option<&str>,
        items: Vec<String>,
        fell_back: bool,
    ) {
        if let Some(slot) = &choice.slot {
            let version = choice.version.as_ref().map_or(0, |v| v.number());
            self.shared.attribution.served(
                slot,
                &choice.strategy,
                version,
                user,
                items,
                fell_back || choice.disabled,
            );
        }
    }

    /// Count an interleaved answer: `teams` says which of `choice` (0) and its partner (1)
    /// contributed each item, and `fell_back` which of them fell back to the built-in ranker.
    pub(crate) fn served_interleaved(
        &self,
        choice: &Choice,
        user: Option<&str>,
        items: Vec<String>,
        teams: Vec<super::interleave::Team>,
        fell_back: [bool; 2],
    ) {
        let (Some(slot), Some(b)) = (&choice.slot, &choice.partner) else {
            return;
        };
        let v = |c: &Choice| c.version.as_ref().map_or(0, |v| v.number());
        self.shared.attribution.served_interleaved(
            slot,
            (&choice.strategy, v(choice)),
            (&b.strategy, v(b)),
            user,
            items,
            teams,
            [fell_back[0] || choice.disabled, fell_back[1] || b.disabled],
        );
    }

    /// Save the A/B figures into the store's tree (the store's checkpoint and close call this,
    /// and flush after). Nothing for a standalone registry.
    pub(crate) fn save_figures(&self) -> Result<()> {
        match self.shared.tree.get() {
            Some(tree) => tree.save_figures(
                &self.shared.attribution.figures(),
                &persist::Experiments {
                    pairs: self.shared.attribution.pair_figures(),
                    shadows: self.shared.shadows.figures(),
                },
            ),
            None => Ok(()),
        }
    }

    /// Attribute clicks and purchases to the variants that showed the items.
    pub(crate) fn attribute(&self, events: &[Event]) {
        self.shared.attribution.record(events);
    }
}

/// What an attempt at a guardrail rollback came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Rolled back.
    Done,
    /// The writer's lock was taken; a later check tries again.
    Busy,
    /// Nothing to roll back to, or `v` is no longer the watched version serving.
    Impossible,
}

/// Whether `w` is a live watch of `v`: its version, within its window.
fn watching(w: &guard::Watch, v: &PluginVersion) -> bool {
    w.version == v.number() && guard::now_secs() < w.until()
}

fn info(t: &Table, name: &str, e: &Entry) -> PluginInfo {
    let v = &e.current;
    let calls = v.calls();
    let nanos = v.counters.nanos.load(Relaxed);
    PluginInfo {
        name: name.to_string(),
        version: v.number(),
        hash: format!("{:016x}", v.hash()),
        features: v.features().iter().map(|f| f.name()).collect(),
        previous: e.previous.as_ref().map(|p| p.number()),
        disabled: e.disabled.clone(),
        calls,
        faults: v.faults(),
        non_finite_scores: v.counters.non_finite.load(Relaxed),
        logs_dropped: v.counters.logs_dropped.load(Relaxed),
        mean_call_us: if calls == 0 {
            0.0
        } else {
            nanos as f64 / calls as f64 / 1000.0
        },
        slots: t
            .slots
            .iter()
            .filter(|(_, s)| s.variants.iter().any(|v| v.strategy.name() == name))
            .map(|(n, _)| n.clone())
            .collect(),
        watch: e
            .guard
            .watch
            .clone()
            .filter(|w| guard::now_secs() < w.until()),
        rollbacks: e.guard.rollbacks.clone(),
    }
}
