//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, off by default):
//! thin wrappers that reach crate-private decoders and handlers with arbitrary bytes. Each
//! must return (an error is fine) and never panic, hang or allocate without bound.

use std::path::Path;

use crate::activity::baskets::Chunk;
use crate::activity::checkpoint::ItemRecord;
use crate::activity::log::Logged;
use crate::activity::{Totals, UserState};
use crate::codec::{self, StoredItem, StoredUser};
use crate::search::Query;
use crate::segment::file::Segment;
use crate::{Config, SegmentVerify, Store};

/// Decode `bytes` as every type the store reads back from sled, and use what decodes the
/// way the store would (a basket chunk is checked, then indexed).
pub fn decode_all(bytes: &[u8]) {
    let key = b"fuzz";
    let _ = codec::decode::<StoredItem>(key, bytes);
    let _ = codec::decode::<StoredUser>(key, bytes);
    let _ = codec::decode::<UserState>(key, bytes);
    let _ = codec::decode::<ItemRecord>(key, bytes);
    let _ = codec::decode::<Totals>(key, bytes);
    let _ = codec::decode::<Vec<Logged>>(key, bytes);
    if let Ok(chunk) = codec::decode::<Chunk>(key, bytes) {
        // The bound a store of 65,536 items would pass.
        if chunk.is_valid(1 << 16) {
            let b = crate::activity::baskets::Baskets::from_chunks([(0, chunk)]);
            for item in 0..8 {
                b.baskets_of(item, |basket| {
                    std::hint::black_box(basket);
                });
            }
        }
    }
    let _ = crate::activity::log::decode_entry(&[b'E', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], bytes);
    let _ = crate::retention::decode_entry(&[b'H', 0, 0, 0, 1], bytes);
    let _ = codec::decode_chunk(&codec::chunk_key(1), bytes);
    let _ = codec::decode_item_slot(&codec::record_key(codec::Kind::Item, 1), bytes);
}

/// Open `bytes` as segment generation 1 in `dir` (a scratch directory), and if it validates,
/// run a fixed set of reads and queries against it.
pub fn segment_queries(dir: &Path, bytes: &[u8]) {
    let path = dir.join(crate::segment::file::file_name(1));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    for verify in [SegmentVerify::Structure, SegmentVerify::Checksum] {
        let Ok(seg) = Segment::open(&path, verify) else {
            continue;
        };
        let snap = crate::snapshot::Snapshot {
            segment: std::sync::Arc::new(seg),
            delta: Default::default(),
            seq: 0,
            activity: Default::default(),
        };
        let bound = snap.item_id_bound().min(64);
        for id in 0..bound {
            let _ = snap.stored_item(id);
            if let Some(name) = snap.item_name(id) {
                let _ = snap.query(&Query::similar_to(name).k(5));
            }
        }
        for id in 0..snap.user_id_bound().min(16) {
            let _ = snap.stored_user(id);
        }
        let _ = snap.query(&Query::profile([("a", 1.0), ("b", 0.5)]).k(10));
    }
}

/// A small store for the request targets: three items, two users, a few events.
pub fn small_store(dir: &Path) -> crate::Result<Store> {
    use crate::{Event, Item, User};
    let store = Store::open_with(dir, Config::default().future_tolerance_secs(None))?;
    store.upsert_items(&[
        Item::new("a", [("colour:red", 1.0), ("kind:mug", 1.0)]).category("kitchen"),
        Item::new("b", [("colour:red", 1.0), ("kind:cup", 0.5)]).category("kitchen"),
        Item::new("c", [("colour:blue", 1.0)]).price(3.0),
    ])?;
    store.upsert_users(&[
        User::new("u", [("colour:red", 1.0)]),
        User::new("v", [("colour:blue", 1.0)]),
    ])?;
    store.record_events(&[
        Event::view("u", "a", 10),
        Event::purchase("u", "b", 1, 2.0, 11).session("s1"),
        Event::purchase("v", "a", 1, 2.0, 12).session("s2"),
        Event::purchase("v", "b", 1, 2.0, 12).session("s2"),
    ])?;
    Ok(store)
}

/// Answer one admin request line against `store`, as a connection would.
pub fn admin_line(store: &Store, line: &[u8]) {
    let _ = crate::admin::respond_line(store, line);
}

/// Check one JSONL line as each of the three kinds.
pub fn jsonl_line(store: &Store, line: &[u8]) {
    crate::import::jsonl::check_line_every_kind(store, line);
}

/// The `plugin_output` target's plugin, compiled once: its `recostore_score` copies its one
/// feature column (the fuzzer's floats, NaN, infinities, negative zero and subnormals
/// included) into the score area and returns the number of scores it wrote: the right one,
/// or, when the context's slot code is the marker [`EchoPlugin::LIE`], the context's `k`
/// (the host's smoke run at load sends slot 0 and must see the right one). Compiling a module
/// per input (the target's first form) ran 3 inputs a second; one module runs thousands.
pub struct EchoPlugin {
    version: crate::plugin::version::PluginVersion,
}

impl EchoPlugin {
    /// The module, in text: input at 1024, so the column lies at `1024 + 32 + 4n` and the
    /// scores at `1024 + 32 + 8n` (`plugin::abi::Layout` with one column).
    const WAT: &'static str = r#"(module
  (memory (export "memory") 2)
  (func (export "recostore_abi_version") (result i32) (i32.const 1))
  (func (export "recostore_features") (result i64) (i64.const 1))
  (func (export "recostore_input") (param $n i32) (result i32) (i32.const 1024))
  (func (export "recostore_score") (param $n i32) (result i32) (local $k i32)
    (memory.copy
      (i32.add (i32.const 1056) (i32.mul (local.get $n) (i32.const 8)))
      (i32.add (i32.const 1056) (i32.mul (local.get $n) (i32.const 4)))
      (i32.mul (local.get $n) (i32.const 4)))
    (local.set $k (i32.load (i32.const 1032)))
    (select (local.get $k) (local.get $n)
      (i32.eq (i32.load (i32.const 1040)) (i32.const 0x7e57)))))"#;

    /// The slot code that makes the module claim `k` scores.
    pub const LIE: u32 = 0x7e57;

    /// Compile the module under the store's default limits.
    pub fn new() -> crate::Result<Self> {
        let host = crate::plugin::host::Host::new(crate::PluginLimits::default())?;
        let wasm = wat::parse_str(Self::WAT).map_err(|e| crate::Error::PluginRejected {
            name: "echo".into(),
            reason: e.to_string(),
        })?;
        let version =
            crate::plugin::version::PluginVersion::load(&host, "echo", 1, &wasm, &[], false, None)?;
        Ok(EchoPlugin { version })
    }

    /// Hand `scores` to the plugin as its feature column and read back what it wrote, the
    /// number it claims being `length` (`None`: the right one). The host must take the scores
    /// or fault, never panic; taken scores are ranked as the store ranks a plugin's.
    pub fn rank(&self, scores: &[f32], length: Option<u32>) {
        let input = crate::plugin::version::Input {
            context: crate::plugin::abi::Context {
                k: length.unwrap_or(0),
                slot: if length.is_some() { Self::LIE } else { 0 },
                ..Default::default()
            },
            ids: (0..crate::narrow::u32_from(scores.len())).collect(),
            columns: vec![scores.to_vec()],
        };
        if let Ok(out) = self.version.run(&input) {
            assert_eq!(out.scores.len(), scores.len(), "a wrong length must fault");
            for (got, sent) in out.scores.iter().zip(scores) {
                assert_eq!(got.to_bits(), sent.to_bits(), "scores are read as written");
            }
            let order = crate::plugin::runner::ranked_positions(&out.scores);
            let mut seen = order.clone();
            seen.sort_unstable();
            assert!(seen.iter().copied().eq(0..scores.len()), "a permutation");
            // Best first by the ranking key, and NaN below everything a number can say.
            let key = |i: usize| crate::plugin::runner::rank_key(out.scores[i]);
            for w in order.windows(2) {
                assert!(key(w[0]).total_cmp(&key(w[1])).is_ge(), "best first");
            }
            if let Some(p) = order.iter().position(|&i| out.scores[i].is_nan()) {
                assert!(
                    order[p..].iter().all(|&i| out.scores[i].is_nan()),
                    "NaN last"
                );
            }
        }
    }
}

/// Decode `bytes` as a published manifest (input from an object store, so from the network):
/// it must be refused or accepted without a panic, and an accepted one must name only paths
/// inside a directory and re-encode to a manifest that decodes to itself.
pub fn manifest(bytes: &[u8]) {
    for generation in [0, 1, 7, u64::MAX] {
        if let Ok(m) = crate::manifest::Manifest::decode("fuzz", bytes, generation) {
            for f in &m.files {
                let p = std::path::Path::new(&f.path);
                assert!(p.is_relative(), "{}", f.path);
                assert!(
                    p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{}",
                    f.path
                );
            }
            let again = m.encode().expect("an accepted manifest encodes");
            let back = crate::manifest::Manifest::decode("fuzz", &again, generation)
                .expect("a re-encoded manifest decodes");
            assert_eq!(back, m);
        }
    }
}

/// Read `bytes` as a published pair file, as a replica does before it serves one: refused or
/// accepted without a panic; what is accepted holds keys in strictly ascending order and
/// encodes back to exactly `bytes` (the format has no slack).
pub fn pairs(bytes: &[u8]) {
    let mut again = crate::pairs::MAGIC.to_vec();
    let mut keys: Vec<&[u8]> = Vec::new();
    let parsed = crate::pairs::parse("fuzz", bytes, None, |k, v| {
        crate::pairs::encode_pair(&mut again, &bytes[k.clone()], &bytes[v])?;
        keys.push(&bytes[k]);
        Ok(())
    });
    if parsed.is_ok() {
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        assert_eq!(again, bytes, "an accepted pair file encodes back to itself");
    }
}
