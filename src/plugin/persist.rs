//! Plugins and slots survive a restart: the registry writes each plugin's current and
//! previous module (with config, version numbers and disabled state) and each slot's routing
//! to sled, under their own prefix, before it publishes a change; `Store::open` loads them
//! back. FORMAT.md lists the keys.

use serde::{Deserialize, Serialize};

use super::slots::Variant;
use crate::codec;
use crate::error::Result;

/// Key prefix of a plugin: `P` `p` + name.
const PLUGIN: &[u8] = b"Pp";
/// Key prefix of a slot: `P` `s` + name.
const SLOT: &[u8] = b"Ps";

/// One version as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub number: u32,
    pub wasm: Vec<u8>,
    pub config: Vec<u8>,
}

/// A plugin as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredPlugin {
    pub current: StoredVersion,
    pub previous: Option<StoredVersion>,
    pub last_number: u32,
    pub disabled: Option<String>,
}

fn key(prefix: &[u8], name: &str) -> Vec<u8> {
    [prefix, name.as_bytes()].concat()
}

/// Write (or, with `None`, remove) plugin `name`, durably.
pub(crate) fn save_plugin(tree: &sled::Tree, name: &str, p: Option<&StoredPlugin>) -> Result<()> {
    match p {
        Some(p) => tree.insert(key(PLUGIN, name), codec::encode(p))?,
        None => tree.remove(key(PLUGIN, name))?,
    };
    tree.flush()?;
    Ok(())
}

/// Write (or remove) slot `name`, durably.
pub(crate) fn save_slot(tree: &sled::Tree, name: &str, v: Option<&Vec<Variant>>) -> Result<()> {
    match v {
        Some(v) => tree.insert(key(SLOT, name), codec::encode(v))?,
        None => tree.remove(key(SLOT, name))?,
    };
    tree.flush()?;
    Ok(())
}

/// What a store holds: plugins and slots by name.
pub(crate) struct Stored {
    pub plugins: Vec<(String, StoredPlugin)>,
    pub slots: Vec<(String, Vec<Variant>)>,
}

/// Every stored plugin and slot, by name.
pub(crate) fn load(tree: &sled::Tree) -> Result<Stored> {
    let mut plugins = Vec::new();
    for kv in tree.scan_prefix(PLUGIN) {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k[PLUGIN.len()..]).into_owned();
        plugins.push((name, codec::decode(&k, &v)?));
    }
    let mut slots = Vec::new();
    for kv in tree.scan_prefix(SLOT) {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k[SLOT.len()..]).into_owned();
        slots.push((name, codec::decode(&k, &v)?));
    }
    Ok(Stored { plugins, slots })
}
