//! Write a recostore ranking strategy as one scoring function.
//!
//! ```
//! use recostore_plugin_sdk::{export_strategy, Candidates, Context, Feature, Strategy};
//!
//! #[derive(Default)]
//! struct Popular;
//!
//! impl Strategy for Popular {
//!     const FEATURES: &'static [Feature] = &[Feature::Similarity, Feature::Popularity];
//!
//!     fn score(&self, _ctx: &Context, c: &Candidates, scores: &mut [f32]) {
//!         for (i, s) in scores.iter_mut().enumerate() {
//!             *s = c.get(Feature::Similarity, i) * (1.0 + c.get(Feature::Popularity, i)).ln();
//!         }
//!     }
//! }
//!
//! export_strategy!(Popular);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown` (crate type
//! `cdylib`), test it with `recostore plugin run target/…/popular.wasm --input input.json`,
//! and load it with `store.plugins().load("popular", &wasm)`. The macro writes the ABI v1
//! exports of `plugins/ABI.md`; nothing else is needed. A panic aborts the call (the host
//! falls back to its built-in ranker and counts a fault), so return scores instead; the SDK's
//! panic hook logs the panic's message and location at error level first, and the host puts
//! that line into the fault it reports (`plugin run`, the query's fallback reason, the log).

use std::cell::RefCell;

/// The ABI version this SDK writes.
pub const ABI_VERSION: u32 = 1;

/// An input column a strategy can ask for. The order is the ABI's bit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Feature {
    /// The scenario's own score (tag similarity, co-occurrence, popularity…).
    Similarity = 0,
    /// Lift of the bought/viewed-together pair that proposed the candidate, else 0.
    Lift = 1,
    /// Time-decayed popularity.
    Popularity = 2,
    /// Purchases per view or click, 0..=1.
    ConversionRate = 3,
    /// Units sold.
    Sales = 4,
    /// Written reviews.
    ReviewCount = 5,
    /// Average rating (0 when unrated).
    Rating = 6,
    /// Unit price.
    Price = 7,
    /// Units in stock.
    Stock = 8,
    /// Days since the item was created (0 when unknown).
    AgeDays = 9,
    /// Opaque category code: equal codes mean the same category; 0 for none.
    Category = 10,
    /// 1 for members-only items.
    MembersOnly = 11,
    /// Cosine of the item's tags against the user's tag profile.
    TagMatch = 12,
}

/// The scenario asking, as the context block codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// More like an item (tag similarity).
    Similar,
    /// Items matching a tag profile.
    Profile,
    /// Bought together (complements).
    Together,
    /// Viewed together.
    Viewed,
    /// The home page for a user.
    ForUser,
    /// Cart cross-sell.
    Cart,
    /// The receipt page.
    AfterPurchase,
    /// Re-ranking search results.
    SearchRerank,
    /// Trending items.
    Trending,
    /// A gift guide.
    Gift,
    /// Substitutes for an item ("instead of this").
    Substitutes,
    /// Complements of an item ("goes with this").
    Complements,
    /// A code this SDK does not know.
    Other(u32),
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::Other(0)
    }
}

/// Who is asking and where (the ABI's context block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// Candidates in this call.
    pub n: u32,
    /// How many results will be shown.
    pub k: u32,
    /// The scenario.
    pub scenario: Scenario,
    /// Page slot code: 1 home, 2 search, 3 product, 4 cart, 5 checkout, 6 email, 0 other.
    pub slot: u32,
    /// Membership tier: 0 none, 1 member, higher from the user's `tier:<n>` tag.
    pub tier: u32,
    /// Price band of the user's average order, 1..=8 (see [`price_band`]); 0 unknown.
    pub spend_band: u32,
    /// Lifecycle: 1 new, 2 active, 3 dormant, 4 churned; 0 without a user.
    pub segment: u32,
}

/// The price band code of a price, as the host codes [`Context::spend_band`]: 1 under 5,
/// 2 under 10, 3 under 20, 4 under 50, 5 under 100, 6 under 200, 7 under 500, 8 above; 0
/// for no price.
pub fn price_band(price: f32) -> u32 {
    const EDGES: [f32; 7] = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
    if price.is_nan() || price <= 0.0 {
        return 0;
    }
    1 + EDGES.iter().filter(|&&e| price >= e).count() as u32
}

/// The candidates of one call: ids and the requested feature columns.
pub struct Candidates<'a> {
    ids: &'a [u32],
    columns: [Option<&'a [f32]>; 13],
}

impl<'a> Candidates<'a> {
    /// Candidates built by hand, for unit tests and native benchmarks of a strategy: `ids`
    /// and the columns it reads. Columns must be as long as `ids`; a missing one reads as 0.
    pub fn new(ids: &'a [u32], columns: &[(Feature, &'a [f32])]) -> Candidates<'a> {
        let mut c = Candidates {
            ids,
            columns: [None; 13],
        };
        for (f, col) in columns {
            c.columns[*f as usize] = Some(col);
        }
        c
    }

    /// How many candidates.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The candidates' ids (opaque; stable within a store).
    pub fn ids(&self) -> &'a [u32] {
        self.ids
    }

    /// The column of feature `f`; empty if the strategy did not ask for it.
    pub fn column(&self, f: Feature) -> &'a [f32] {
        self.columns[f as usize].unwrap_or(&[])
    }

    /// Feature `f` of candidate `i`; 0 if not asked for or out of range.
    pub fn get(&self, f: Feature, i: usize) -> f32 {
        self.column(f).get(i).copied().unwrap_or(0.0)
    }
}

/// A strategy's config: the JSON text given at load (`load_with_config`, or `"config"` in a
/// runner input), with a reader for flat numeric fields.
pub struct Config<'a>(pub &'a str);

impl Config<'_> {
    /// The text of the value under `"key"` in a flat JSON object, from its first character.
    fn value(&self, key: &str) -> Option<&str> {
        let pat = format!("\"{key}\"");
        let mut from = 0;
        // A key is a quoted name followed by `:`; the same text as a string value is not.
        while let Some(i) = self.0.get(from..)?.find(&pat) {
            let at = from + i + pat.len();
            if let Some(rest) = self.0[at..].trim_start().strip_prefix(':') {
                return Some(rest.trim_start());
            }
            from = at;
        }
        None
    }

    /// The first token of a value, for an error message.
    fn shown(v: &str) -> &str {
        let end = v.find([',', '}', '\n']).unwrap_or(v.len());
        v[..end.min(40)].trim_end()
    }

    /// The number under `"key"`: `Ok(None)` when absent, an error naming the key when the
    /// value is not a number (`"0.5"`, `true`).
    pub fn get_number(&self, key: &str) -> Result<Option<f32>, String> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let end = v
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(v.len());
        match v[..end].parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(format!(
                "config `{key}` must be a number, not {}",
                Self::shown(v)
            )),
        }
    }

    /// The string under `"key"` (JSON escapes decoded): `Ok(None)` when absent, an error
    /// naming the key when the value is not a string.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, String> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let bad = || format!("config `{key}` must be a string, not {}", Self::shown(v));
        let mut chars = v.strip_prefix('"').ok_or_else(bad)?.chars();
        let mut out = String::new();
        loop {
            match chars.next().ok_or_else(bad)? {
                '"' => return Ok(Some(out)),
                '\\' => match chars.next().ok_or_else(bad)? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(bad)?;
                        out.push(c);
                    }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
    }

    /// The boolean under `"key"`: `Ok(None)` when absent, an error naming the key when the
    /// value is not `true` or `false`.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, String> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let word = v
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(v, |end| &v[..end]);
        match word {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(format!(
                "config `{key}` must be true or false, not {}",
                Self::shown(v)
            )),
        }
    }

    /// The number under `"key"`, or `None` when it is absent *or not a number*. Lenient:
    /// prefer [`Config::get_number`], which refuses a wrong type instead of hiding it.
    pub fn number(&self, key: &str) -> Option<f32> {
        self.get_number(key).ok().flatten()
    }

    /// [`Config::number`] or `default`. Lenient, like `number`: a strategy whose settings
    /// matter uses `config.get_number(key)?.unwrap_or(default)` in [`Strategy::new`], so a
    /// wrong type fails the load with the key named.
    pub fn number_or(&self, key: &str, default: f32) -> f32 {
        self.number(key).unwrap_or(default)
    }
}

/// Install (once) a panic hook that logs the panic's message and location at error level, so
/// the host can report them instead of "unreachable instruction executed".
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("panic: {info}"))
        }));
    });
}

/// A ranking strategy. Implement [`Strategy::score`] and name the columns it reads; export it
/// with [`export_strategy!`].
pub trait Strategy: Sized + 'static {
    /// The feature columns `score` reads; only these are computed and copied in.
    const FEATURES: &'static [Feature];

    /// Build the strategy from its config (empty text when none was given). The default
    /// ignores the config; a strategy with settings overrides this and returns `Err` with a
    /// message for a bad config, which fails the load.
    fn new(config: &Config) -> Result<Self, String>
    where
        Self: Default,
    {
        let _ = config;
        Ok(Self::default())
    }

    /// Write one score per candidate into `scores` (higher ranks first; NaN ranks last).
    fn score(&self, ctx: &Context, candidates: &Candidates, scores: &mut [f32]);
}

/// Log levels for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// Something is wrong.
    Error = 0,
    /// Something looks wrong.
    Warn = 1,
    /// Worth knowing.
    Info = 2,
    /// For debugging.
    Debug = 3,
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: i32, len: i32);
}

/// Log a line through the host (into its `tracing` output, and printed by the runner). The
/// host cuts long lines and drops lines past a per-call limit, so log sparingly.
pub fn log(level: Level, text: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory, bounds-checked
    // on its side; `text` is a live, initialised slice for the duration of the call.
    unsafe {
        host_log(level as i32, text.as_ptr() as i32, text.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, text);
}

/// The bitmask of a feature list.
pub const fn mask(features: &[Feature]) -> i64 {
    let mut m = 0i64;
    let mut i = 0;
    while i < features.len() {
        m |= 1 << features[i] as u8;
        i += 1;
    }
    m
}

/// What the exports share between calls.
#[derive(Default)]
struct Runtime {
    buf: Vec<u32>,
    config: Vec<u8>,
    strategy: Option<Box<dyn std::any::Any>>,
}

thread_local! {
    static RT: RefCell<Runtime> = RefCell::new(Runtime::default());
}

/// The ABI plumbing [`export_strategy!`] calls; not for direct use.
#[doc(hidden)]
pub mod __rt {
    use super::*;

    const CONTEXT_WORDS: usize = 8;

    fn columns_of<T: Strategy>() -> usize {
        (0..13)
            .filter(|b| mask(T::FEATURES) & (1 << b) != 0)
            .count()
    }

    pub fn input<T: Strategy>(n: i32) -> i32 {
        install_panic_hook();
        let n = n.max(0) as usize;
        let words = CONTEXT_WORDS + n * (2 + columns_of::<T>());
        RT.with(|rt| {
            let mut rt = rt.borrow_mut();
            rt.buf.clear();
            rt.buf.resize(words, 0);
            rt.buf.as_mut_ptr() as i32
        })
    }

    pub fn config(len: i32) -> i32 {
        install_panic_hook();
        RT.with(|rt| {
            let mut rt = rt.borrow_mut();
            rt.config.clear();
            rt.config.resize(len.max(0) as usize, 0);
            rt.config.as_mut_ptr() as i32
        })
    }

    pub fn init<T: Strategy + Default>(_len: i32) -> i32 {
        RT.with(|rt| {
            let mut rt = rt.borrow_mut();
            let text = String::from_utf8_lossy(&rt.config).into_owned();
            match T::new(&Config(&text)) {
                Ok(s) => {
                    rt.strategy = Some(Box::new(s));
                    0
                }
                Err(e) => {
                    // The host reports this line as the reason the config was refused.
                    log(Level::Error, &e);
                    1
                }
            }
        })
    }

    fn scenario(code: u32) -> Scenario {
        match code {
            1 => Scenario::Similar,
            2 => Scenario::Profile,
            3 => Scenario::Together,
            4 => Scenario::Viewed,
            5 => Scenario::ForUser,
            6 => Scenario::Cart,
            7 => Scenario::AfterPurchase,
            8 => Scenario::SearchRerank,
            9 => Scenario::Trending,
            10 => Scenario::Gift,
            11 => Scenario::Substitutes,
            12 => Scenario::Complements,
            c => Scenario::Other(c),
        }
    }

    pub fn score<T: Strategy + Default>(n: i32) -> i32 {
        RT.with(|rt| {
            let mut rt = rt.borrow_mut();
            let rt = &mut *rt;
            let n = n.max(0) as usize;
            if rt.strategy.is_none() {
                match T::new(&Config("")) {
                    Ok(s) => rt.strategy = Some(Box::new(s)),
                    Err(_) => return -1,
                }
            }
            let Some(strategy) = rt.strategy.as_ref().and_then(|s| s.downcast_ref::<T>()) else {
                return -1;
            };
            let cols = columns_of::<T>();
            if rt.buf.len() != CONTEXT_WORDS + n * (2 + cols) {
                return -2;
            }
            let c = &rt.buf[..CONTEXT_WORDS];
            let ctx = Context {
                n: c[1],
                k: c[2],
                scenario: scenario(c[3]),
                slot: c[4],
                tier: c[5],
                spend_band: c[6],
                segment: c[7],
            };
            let (head, out) = rt.buf.split_at_mut(CONTEXT_WORDS + n * (1 + cols));
            let ids = &head[CONTEXT_WORDS..CONTEXT_WORDS + n];
            let floats = &head[CONTEXT_WORDS + n..];
            // SAFETY: u32 and f32 have the same size and alignment and every bit pattern is a
            // valid f32, so viewing the host-written words as floats is sound; the slices
            // come from one live Vec and do not overlap (split_at_mut).
            let floats: &[f32] =
                unsafe { std::slice::from_raw_parts(floats.as_ptr().cast::<f32>(), floats.len()) };
            // SAFETY: as above, for the output words, borrowed mutably and exclusively.
            let scores: &mut [f32] = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len())
            };
            let mut columns: [Option<&[f32]>; 13] = [None; 13];
            let m = mask(T::FEATURES);
            let mut next = 0;
            for (b, slot) in columns.iter_mut().enumerate() {
                if m & (1 << b) != 0 {
                    *slot = Some(&floats[next * n..(next + 1) * n]);
                    next += 1;
                }
            }
            strategy.score(&ctx, &Candidates { ids, columns }, scores);
            n as i32
        })
    }
}

/// Export `$t` (a [`Strategy`] that also implements `Default`) as an ABI v1 plugin. Use once,
/// in a `cdylib` crate.
#[macro_export]
macro_rules! export_strategy {
    ($t:ty) => {
        const _: () = {
            #[no_mangle]
            pub extern "C" fn recostore_abi_version() -> i32 {
                $crate::ABI_VERSION as i32
            }
            #[no_mangle]
            pub extern "C" fn recostore_features() -> i64 {
                $crate::mask(<$t as $crate::Strategy>::FEATURES)
            }
            #[no_mangle]
            pub extern "C" fn recostore_input(n: i32) -> i32 {
                $crate::__rt::input::<$t>(n)
            }
            #[no_mangle]
            pub extern "C" fn recostore_config(len: i32) -> i32 {
                $crate::__rt::config(len)
            }
            #[no_mangle]
            pub extern "C" fn recostore_init(len: i32) -> i32 {
                $crate::__rt::init::<$t>(len)
            }
            #[no_mangle]
            pub extern "C" fn recostore_score(n: i32) -> i32 {
                $crate::__rt::score::<$t>(n)
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_flat_numbers() {
        let c = Config(r#"{"a": 1.5, "b":-2e1, "c": "x"}"#);
        assert_eq!(c.number("a"), Some(1.5));
        assert_eq!(c.number("b"), Some(-20.0));
        assert_eq!(c.number("c"), None);
        assert_eq!(c.number_or("d", 3.0), 3.0);
    }

    #[test]
    fn typed_accessors_refuse_a_wrong_type_naming_the_key() {
        let c = Config(
            r#"{"w": "0.5", "name": "gift \"guide\"\n", "on": true, "off": false, "n": 2, "label": "w"}"#,
        );
        assert_eq!(c.get_number("n"), Ok(Some(2.0)));
        assert_eq!(c.get_number("missing"), Ok(None));
        let e = c.get_number("w").unwrap_err();
        assert!(e.contains("`w`") && e.contains("number"), "{e}");
        assert_eq!(c.get_string("name"), Ok(Some("gift \"guide\"\n".into())));
        assert!(c
            .get_string("n")
            .unwrap_err()
            .contains("`n` must be a string"));
        assert_eq!(c.get_bool("on"), Ok(Some(true)));
        assert_eq!(c.get_bool("off"), Ok(Some(false)));
        assert!(c.get_bool("name").unwrap_err().contains("true or false"));
        // A string value equal to a key's name is not that key.
        assert_eq!(c.get_string("label"), Ok(Some("w".into())));
    }

    #[test]
    fn hand_built_candidates_read_their_columns() {
        let sim = [0.5, 0.25];
        let c = Candidates::new(&[7, 9], &[(Feature::Similarity, &sim)]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(Feature::Similarity, 1), 0.25);
        assert_eq!(c.get(Feature::Price, 1), 0.0, "not asked for");
        assert_eq!(c.ids(), [7, 9]);
    }

    #[test]
    fn bands_and_masks() {
        assert_eq!(price_band(0.0), 0);
        assert_eq!(price_band(7.0), 2);
        assert_eq!(price_band(1000.0), 8);
        assert_eq!(mask(&[Feature::Similarity, Feature::TagMatch]), 1 | 1 << 12);
    }
}
