//! Plugins and slots survive a restart: the registry writes each plugin's current and
//! previous version (config, version numbers and disabled state) and each slot's routing to
//! sled, under their own prefix, before it publishes a change; `Store::open` loads them back.
//!
//! Module bytes do not go into sled. sled never gave back the space of a replaced large
//! value: 40 hot swaps of a 7.9 MB module grew a store from 0.3 to 625 MB, for good. So each
//! module is a content-addressed file, `plugins/<xxh3-128 hex>.wasm` in the store directory,
//! written (and synced) before the sled record that names it, and deleted once no record
//! names it. The store then holds at most the modules its plugins can serve or roll back to.
//! Stores written before this layout (`P` `p` records with the bytes inline) are moved to it
//! on open. FORMAT.md lists the keys and the files.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::slots::{Mode, Variant};
use crate::codec;
use crate::error::{Error, Result};

/// Key prefix of a plugin in the old layout (module bytes inline): `P` `p` + name.
const PLUGIN_INLINE: &[u8] = b"Pp";
/// Key prefix of a plugin: `P` `v` + name.
const PLUGIN: &[u8] = b"Pv";
/// Key prefix of a slot: `P` `s` + name.
const SLOT: &[u8] = b"Ps";
/// Key of the A/B figures (every variant's counters): `P` `a`.
const FIGURES: &[u8] = b"Pa";
/// Key prefix of a plugin's guardrails (the watch of a promotion, and its rollbacks):
/// `P` `g` + name.
const GUARD: &[u8] = b"Pg";
/// Key of the interleaving and shadow figures (`P` `x`).
const EXPERIMENTS: &[u8] = b"Px";
/// Key prefix of a slot with shadow or interleaved variants: `P` `r` + name. Such a slot is
/// kept out of `P` `s`, whose records older binaries read as serving variants only.
const ROUTE: &[u8] = b"Pr";

/// A serving variant as `P` `s` holds it (the layout of every release).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ServeRecord {
    strategy: String,
    weight: u32,
}

/// A variant of any mode as `P` `r` holds it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RouteRecord {
    strategy: String,
    weight: u32,
    /// 0 serve, 1 shadow, 2 interleave.
    mode: u8,
    sample: Option<f64>,
}

/// The interleaving and shadow figures, saved with the A/B ones.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Experiments {
    pub pairs: Vec<super::slots::SavedPair>,
    pub shadows: Vec<super::shadow::SavedShadow>,
}
/// The directory of module files, inside the store directory.
pub const MODULES_DIR: &str = "plugins";

/// One version, with its module bytes: what the registry saves and loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub number: u32,
    pub wasm: Vec<u8>,
    pub config: Vec<u8>,
}

/// A plugin, with its modules: what the registry saves and loads (and the old layout's
/// record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredPlugin {
    pub current: StoredVersion,
    pub previous: Option<StoredVersion>,
    pub last_number: u32,
    pub disabled: Option<String>,
}

/// One version as its sled record holds it: the module by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct VersionRef {
    number: u32,
    /// File name in [`MODULES_DIR`]: `<xxh3-128 of the bytes, hex>.wasm`.
    module: String,
    /// The module's length in bytes.
    bytes: u64,
    config: Vec<u8>,
}

/// A plugin as its sled record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PluginRef {
    current: VersionRef,
    previous: Option<VersionRef>,
    last_number: u32,
    disabled: Option<String>,
}

/// Where a registry persists: the store's sled tree and its module directory.
pub(crate) struct Backing {
    pub tree: crate::durable::Db,
    modules: PathBuf,
}

fn key(prefix: &[u8], name: &str) -> Vec<u8> {
    [prefix, name.as_bytes()].concat()
}

fn module_name(wasm: &[u8]) -> String {
    format!("{:032x}.wasm", xxhash_rust::xxh3::xxh3_128(wasm))
}

/// fsync a file or directory.
fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing plugin module", path, e))
}

impl Backing {
    /// The backing of the store in `dir` (its tree `tree`), creating the module directory.
    pub(crate) fn new(tree: crate::durable::Db, dir: &Path) -> Result<Backing> {
        let modules = dir.join(MODULES_DIR);
        std::fs::create_dir_all(&modules)
            .map_err(|e| Error::io("creating plugin module directory", &modules, e))?;
        Ok(Backing { tree, modules })
    }

    /// Write `wasm` as a module file (if no file holds it yet), durably; its reference.
    fn put(&self, v: &StoredVersion) -> Result<VersionRef> {
        let name = module_name(&v.wasm);
        let path = self.modules.join(&name);
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == v.wasm.len() as u64);
        if !present {
            let tmp = self
                .modules
                .join(format!(".{name}.{}.tmp", std::process::id()));
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .and_then(|mut f| {
                    f.write_all(&v.wasm)?;
                    f.sync_all()
                });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("writing plugin module", &tmp, e));
            }
            std::fs::rename(&tmp, &path)
                .map_err(|e| Error::io("writing plugin module", &path, e))?;
            sync(&self.modules)?;
        }
        Ok(VersionRef {
            number: v.number,
            module: name,
            bytes: v.wasm.len() as u64,
            config: v.config.clone(),
        })
    }

    /// The module a reference names, checked against its length and hash.
    fn get(&self, r: &VersionRef) -> Result<StoredVersion> {
        let path = self.modules.join(&r.module);
        let wasm =
            std::fs::read(&path).map_err(|e| Error::io("reading plugin module", &path, e))?;
        if wasm.len() as u64 != r.bytes || module_name(&wasm) != r.module {
            return Err(Error::CorruptRecord {
                key: path.display().to_string(),
                reason: format!(
                    "the module file holds {} bytes that do not hash to its name (expected {} \
                     bytes); load the plugin again",
                    wasm.len(),
                    r.bytes
                ),
            });
        }
        Ok(StoredVersion {
            number: r.number,
            wasm,
            config: r.config.clone(),
        })
    }

    fn write(&self, name: &str, p: &StoredPlugin) -> Result<()> {
        let b = self.record(name, p)?;
        self.tree.apply_batch(b)
    }

    /// The module files of `p`, written; and a batch with its record (replacing one in the
    /// old layout).
    fn record(&self, name: &str, p: &StoredPlugin) -> Result<crate::durable::Batch> {
        let stored = PluginRef {
            current: self.put(&p.current)?,
            previous: p.previous.as_ref().map(|v| self.put(v)).transpose()?,
            last_number: p.last_number,
            disabled: p.disabled.clone(),
        };
        let k = key(PLUGIN, name);
        let mut b = crate::durable::Batch::default();
        b.insert(&k, codec::encode(&k, &stored)?);
        b.remove(key(PLUGIN_INLINE, name));
        Ok(b)
    }

    /// Delete module files no record names (and temporary files a crash left). Runs after
    /// the records are durable, so a crash in between leaves only an extra file, which the
    /// next run deletes.
    fn collect(&self) -> Result<()> {
        let mut named = HashSet::new();
        for kv in self.tree.scan_prefix(PLUGIN) {
            let (k, v) = kv?;
            let p: PluginRef = codec::decode(&k, &v)?;
            named.insert(p.current.module);
            named.extend(p.previous.map(|v| v.module));
        }
        let entries = std::fs::read_dir(&self.modules)
            .map_err(|e| Error::io("listing plugin modules", &self.modules, e))?;
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !named.contains(&file) {
                let path = entry.path();
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete an unused plugin module");
                }
            }
        }
        Ok(())
    }

    /// Whether a plugin record of `name` exists (in either layout).
    pub(crate) fn has_plugin(&self, name: &str) -> Result<bool> {
        Ok(self.tree.contains_key(key(PLUGIN, name))?
            || self.tree.contains_key(key(PLUGIN_INLINE, name))?)
    }

    /// Write (or, with `None`, remove) plugin `name` and its guardrails' state (`None`: none)
    /// in one atomic batch, durably, then delete modules no longer named. One batch, so a
    /// crash never leaves a rollback's restored version without its record.
    pub(crate) fn save_plugin(
        &self,
        name: &str,
        p: Option<&StoredPlugin>,
        guard: Option<&super::guard::Stored>,
    ) -> Result<()> {
        let mut b = match p {
            Some(p) => self.record(name, p)?,
            None => {
                let mut b = crate::durable::Batch::default();
                b.remove(key(PLUGIN, name));
                b.remove(key(PLUGIN_INLINE, name));
                b
            }
        };
        let g = key(GUARD, name);
        match guard.filter(|_| p.is_some()) {
            Some(guard) => b.insert(&g, codec::encode(&g, guard)?),
            None => b.remove(g),
        }
        self.tree.apply_batch(b)?;
        self.tree.flush()?;
        self.collect()
    }

    /// Write the A/B figures (in the tree's next flush: they go with a checkpoint).
    pub(crate) fn save_figures(
        &self,
        figures: &[super::slots::SavedFigures],
        experiments: &Experiments,
    ) -> Result<()> {
        let mut batch = crate::durable::Batch::default();
        batch.insert(FIGURES, codec::encode(FIGURES, &figures.to_vec())?);
        batch.insert(EXPERIMENTS, codec::encode(EXPERIMENTS, experiments)?);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The A/B, interleaving and shadow figures saved last, if any.
    pub(crate) fn load_figures(&self) -> Result<(Vec<super::slots::SavedFigures>, Experiments)> {
        let figures = match self.tree.get(FIGURES)? {
            Some(v) => codec::decode(FIGURES, &v)?,
            None => Vec::new(),
        };
        // Statistics: a record this release cannot read costs those figures, not the open.
        let experiments = match self.tree.get(EXPERIMENTS)? {
            Some(v) => codec::decode(EXPERIMENTS, &v).unwrap_or_else(|e| {
                tracing::error!(
                    target: "recostore::plugin",
                    error = %e,
                    "the saved interleaving and shadow figures do not decode; they start again from zero"
                );
                Experiments::default()
            }),
            None => Experiments::default(),
        };
        Ok((figures, experiments))
    }

    /// Whether the store refuses writes (a replica: its plugins change only with the
    /// leader's generations, so its guardrails judge nothing).
    pub(crate) fn is_read_only(&self) -> bool {
        self.tree.is_read_only()
    }

    /// Every plugin's stored guardrails' state, by name.
    pub(crate) fn load_guards(&self) -> Result<Vec<(String, super::guard::Stored)>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(GUARD) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[GUARD.len()..]).into_owned();
            // Guardrails are advice about a version, not the version: a record that does not
            // decode is reported and left out, and the store still opens.
            match codec::decode::<super::guard::Stored>(&k, &v) {
                Ok(mut g) => {
                    // Bounds that mean nothing (a damaged or hand-written record) would
                    // judge nothing right: the watch is dropped, the rollbacks kept.
                    if let Some(Err(why)) = g.watch.as_ref().map(|w| w.guardrails.check()) {
                        tracing::error!(target: "recostore::plugin", plugin = %name,
                            "a stored watch has guardrails that mean nothing ({why}); it is dropped");
                        g.watch = None;
                    }
                    out.push((name, g));
                }
                Err(e) => tracing::error!(
                    target: "recostore::plugin",
                    plugin = %name,
                    error = %e,
                    "the stored guardrails of a plugin do not decode; its watch and rollback \
                     records are dropped"
                ),
            }
        }
        Ok(out)
    }

    /// Write (or remove) slot `name`, durably: a slot of serving variants only under `P` `s`
    /// as every release wrote it, any other under `P` `r` (and never both).
    pub(crate) fn save_slot(&self, name: &str, v: Option<&Vec<Variant>>) -> Result<()> {
        let (old, new) = (key(SLOT, name), key(ROUTE, name));
        let mut b = crate::durable::Batch::default();
        match v {
            Some(v) if v.iter().all(|v| v.mode == Mode::Serve) => {
                let stored: Vec<ServeRecord> = v
                    .iter()
                    .map(|v| ServeRecord {
                        strategy: v.strategy.name().to_string(),
                        weight: v.weight,
                    })
                    .collect();
                b.insert(&old[..], codec::encode(&old, &stored)?);
                b.remove(&new[..]);
            }
            Some(v) => {
                let stored: Vec<RouteRecord> = v
                    .iter()
                    .map(|v| RouteRecord {
                        strategy: v.strategy.name().to_string(),
                        weight: v.weight,
                        mode: match v.mode {
                            Mode::Serve => 0,
                            Mode::Shadow => 1,
                            Mode::Interleave => 2,
                        },
                        sample: v.sample,
                    })
                    .collect();
                b.insert(&new[..], codec::encode(&new, &stored)?);
                b.remove(&old[..]);
            }
            None => {
                b.remove(&old[..]);
                b.remove(&new[..]);
            }
        }
        self.tree.apply_batch(b)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Every stored plugin and slot, by name. Plugins still in the old layout are moved to
    /// module files first.
    pub(crate) fn load(&self) -> Result<Stored> {
        let mut moved = false;
        for kv in self.tree.scan_prefix(PLUGIN_INLINE) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[PLUGIN_INLINE.len()..]).into_owned();
            let p: StoredPlugin = codec::decode(&k, &v)?;
            self.write(&name, &p)?;
            moved = true;
        }
        if moved {
            self.tree.flush()?;
            tracing::info!(
                "plugin modules moved out of sled into {}",
                self.modules.display()
            );
        }
        self.collect()?;
        let mut plugins = Vec::new();
        for kv in self.tree.scan_prefix(PLUGIN) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[PLUGIN.len()..]).into_owned();
            let r: PluginRef = codec::decode(&k, &v)?;
            let loaded = self.get(&r.current).and_then(|current| {
                Ok(StoredPlugin {
                    current,
                    previous: r.previous.as_ref().map(|v| self.get(v)).transpose()?,
                    last_number: r.last_number,
                    disabled: r.disabled.clone(),
                })
            });
            match loaded {
                Ok(p) => plugins.push((name, p)),
                // One missing or damaged module leaves that plugin out, not the store closed.
                Err(e) => tracing::error!(
                    target: "recostore::plugin",
                    plugin = %name,
                    error = %e,
                    "a stored plugin's module is missing or damaged; it is not serving. Load it again or unload it"
                ),
            }
        }
        let mut slots = Vec::new();
        for kv in self.tree.scan_prefix(SLOT) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[SLOT.len()..]).into_owned();
            let stored: Vec<ServeRecord> = codec::decode(&k, &v)?;
            let variants = stored
                .into_iter()
                .map(|r| Variant::new(r.strategy, r.weight))
                .collect();
            slots.push((name, variants));
        }
        let mut stale: Vec<Vec<u8>> = Vec::new();
        for kv in self.tree.scan_prefix(ROUTE) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[ROUTE.len()..]).into_owned();
            // This release never leaves both keys of a slot; an older binary routing the slot
            // again writes `P` `s` and cannot see `P` `r`, so `P` `s` is the newer routing.
            if slots.iter().any(|(n, _)| *n == name) {
                tracing::warn!(
                    target: "recostore::plugin",
                    slot = %name,
                    "a slot has both an older binary's routing and a shadow or interleaved one; the older binary's, written later, serves, and the other is removed"
                );
                // Removed, so that the older binary's later `slot.remove` of `P` `s` cannot
                // bring it back. A replica's tree is the leader's and is left as it is.
                stale.push(k.to_vec());
                continue;
            }
            let stored: Vec<RouteRecord> = codec::decode(&k, &v)?;
            let mut variants = Vec::with_capacity(stored.len());
            for r in stored {
                let mode = match r.mode {
                    0 => Mode::Serve,
                    1 => Mode::Shadow,
                    2 => Mode::Interleave,
                    m => {
                        return Err(codec::corrupt(
                            &k,
                            &format!("variant mode {m} is not one this release knows"),
                        ))
                    }
                };
                variants.push(Variant {
                    mode,
                    sample: r.sample,
                    ..Variant::new(r.strategy, r.weight)
                });
            }
            slots.push((name, variants));
        }
        if !stale.is_empty() && !self.tree.is_read_only() {
            let mut b = crate::durable::Batch::default();
            for k in &stale {
                b.remove(k);
            }
            self.tree.apply_batch(b)?;
        }
        Ok(Stored { plugins, slots })
    }
}

/// What a store holds: plugins and slots by name.
pub(crate) struct Stored {
    pub plugins: Vec<(String, StoredPlugin)>,
    pub slots: Vec<(String, Vec<Variant>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: u32, byte: u8) -> StoredVersion {
        StoredVersion {
            number,
            wasm: vec![byte; 1000],
            config: b"{}".to_vec(),
        }
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join(MODULES_DIR))
            .expect("modules")
            .count()
    }

    #[test]
    fn old_inline_records_move_to_module_files_and_unused_files_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = crate::durable::memory();
        let old = StoredPlugin {
            current: version(2, 7),
            previous: Some(version(1, 6)),
            last_number: 2,
            disabled: None,
        };
        let k = key(PLUGIN_INLINE, "p");
        tree.insert(&k[..], codec::encode(&k, &old).expect("encode"))
            .expect("insert");
        let b = Backing::new(tree.clone(), dir.path()).expect("backing");
        let loaded = b.load().expect("load");
        assert_eq!(loaded.plugins, vec![("p".to_string(), old.clone())]);
        assert!(!tree.contains_key(key(PLUGIN_INLINE, "p")).expect("get"));
        assert_eq!(files(dir.path()), 2);
        // A swap keeps two versions; the oldest module goes.
        let next = StoredPlugin {
            current: version(3, 8),
            previous: Some(version(2, 7)),
            last_number: 3,
            disabled: None,
        };
        b.save_plugin("p", Some(&next), None).expect("save");
        assert_eq!(files(dir.path()), 2);
        assert_eq!(b.load().expect("load").plugins[0].1, next);
        b.save_plugin("p", None, None).expect("remove");
        assert_eq!(files(dir.path()), 0);
    }

    #[test]
    fn a_damaged_module_leaves_its_plugin_out_not_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Backing::new(crate::durable::memory(), dir.path()).expect("backing");
        let p = StoredPlugin {
            current: version(1, 3),
            previous: None,
            last_number: 1,
            disabled: None,
        };
        b.save_plugin("bad", Some(&p), None).expect("save");
        b.save_plugin(
            "good",
            Some(&StoredPlugin {
                current: version(1, 4),
                ..p.clone()
            }),
            None,
        )
        .expect("save");
        let file = dir
            .path()
            .join(MODULES_DIR)
            .join(module_name(&p.current.wasm));
        std::fs::write(&file, b"flipped").expect("damage");
        let names: Vec<String> = b
            .load()
            .expect("load")
            .plugins
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(names, vec!["good".to_string()]);
    }
}
