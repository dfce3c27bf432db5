//! ABI v1 between the host and a ranking plugin: export names, the feature columns, the
//! user-context block and the layout of the one buffer they share. `plugins/ABI.md` is the
//! same contract written for strategy authors; change both together and bump [`ABI_VERSION`].

use serde::{Deserialize, Serialize};

/// The ABI version this host speaks; a plugin's `recostore_abi_version` must return it.
pub const ABI_VERSION: u32 = 1;

/// Export: `() -> i32`, the ABI version the plugin was built for.
pub const EXPORT_VERSION: &str = "recostore_abi_version";
/// Export: `() -> i64`, the bitmask of [`Feature`] columns the plugin wants.
pub const EXPORT_FEATURES: &str = "recostore_features";
/// Export: `(n: i32) -> i32`, a pointer to a buffer of [`Layout::bytes`] for `n` candidates.
pub const EXPORT_INPUT: &str = "recostore_input";
/// Export: `(n: i32) -> i32`, score the buffer; returns `n` on success.
pub const EXPORT_SCORE: &str = "recostore_score";
/// Optional export: `(len: i32) -> i32`, a pointer to `len` bytes for the plugin's config.
pub const EXPORT_CONFIG: &str = "recostore_config";
/// Optional export: `(len: i32) -> i32`, read the config written there; 0 on success.
pub const EXPORT_INIT: &str = "recostore_init";
/// Export: the plugin's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// The one import a plugin may have: `env.log(level: i32, ptr: i32, len: i32)`.
pub const IMPORT_LOG: (&str, &str) = ("env", "log");

/// Bytes of the user-context block at the start of the buffer (eight little-endian `u32`s).
pub const CONTEXT_BYTES: usize = 32;

/// One input column a plugin can ask for. The discriminant is the bit in the feature mask
/// and the column's position among the requested ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Feature {
    /// The scenario's own score for the candidate (tag similarity, co-occurrence, popularity…).
    Similarity = 0,
    /// Lift of the strongest bought/viewed-together pair that proposed it, else 0.
    Lift = 1,
    /// Time-decayed popularity.
    Popularity = 2,
    /// Purchases per view or click, in [0, 1].
    ConversionRate = 3,
    /// Units sold.
    Sales = 4,
    /// Written reviews.
    ReviewCount = 5,
    /// Average rating, 0 when unrated.
    Rating = 6,
    /// Unit price.
    Price = 7,
    /// Units in stock.
    Stock = 8,
    /// Days since the item was created, 0 when unknown.
    AgeDays = 9,
    /// An opaque code of the item's category path: equal codes, same category (24 bits, so
    /// exact in an `f32`); 0 when it has none.
    Category = 10,
    /// 1 for a members-only item, else 0.
    MembersOnly = 11,
    /// Cosine of the item's tags against the user's tag profile, 0 without a user.
    TagMatch = 12,
}

impl Feature {
    /// Every feature, in bit order.
    pub const ALL: [Feature; 13] = [
        Feature::Similarity,
        Feature::Lift,
        Feature::Popularity,
        Feature::ConversionRate,
        Feature::Sales,
        Feature::ReviewCount,
        Feature::Rating,
        Feature::Price,
        Feature::Stock,
        Feature::AgeDays,
        Feature::Category,
        Feature::MembersOnly,
        Feature::TagMatch,
    ];

    /// The mask bit of this feature.
    pub fn bit(self) -> u64 {
        1 << self as u8
    }

    /// The name used in manifests, runner input and `plugins/ABI.md`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Similarity => "similarity",
            Feature::Lift => "lift",
            Feature::Popularity => "popularity",
            Feature::ConversionRate => "conversion_rate",
            Feature::Sales => "sales",
            Feature::ReviewCount => "review_count",
            Feature::Rating => "rating",
            Feature::Price => "price",
            Feature::Stock => "stock",
            Feature::AgeDays => "age_days",
            Feature::Category => "category",
            Feature::MembersOnly => "members_only",
            Feature::TagMatch => "tag_match",
        }
    }

    /// The feature called `name`.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A set of features, as the bitmask a plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// Every bit that names a feature in this ABI version.
    pub const KNOWN: u64 = (1 << Feature::ALL.len()) - 1;

    /// The set from a plugin's mask; `None` if it sets a bit this ABI does not define.
    pub fn from_mask(mask: u64) -> Option<FeatureSet> {
        (mask & !Self::KNOWN == 0).then_some(FeatureSet(mask))
    }

    /// The raw mask.
    pub fn mask(self) -> u64 {
        self.0
    }

    /// Whether `f` is in the set.
    pub fn contains(self, f: Feature) -> bool {
        self.0 & f.bit() != 0
    }

    /// The features in column order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// How many columns.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether no column was asked for.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        FeatureSet(iter.into_iter().fold(0, |m, f| m | f.bit()))
    }
}

/// Who is asking and where: the block a plugin reads before its columns. All fields are small
/// codes so that a plugin in any language can branch on them; `plugins/ABI.md` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// How many results will be shown.
    pub k: u32,
    /// The scenario: 1 similar, 2 profile, 3 together, 4 viewed, 5 for-user, 6 cart,
    /// 7 after-purchase, 8 search-rerank, 9 trending, 10 gift, 11 substitutes, 12 complements;
    /// 0 unknown.
    pub scenario: u32,
    /// The page slot: 1 home, 2 search, 3 product, 4 cart, 5 checkout, 6 email; 0 none or
    /// another name.
    pub slot: u32,
    /// Membership tier: the user's `tier:<n>` tag, else 1 for a `member` tag, else 0.
    pub tier: u32,
    /// The price band of the user's average order, 1 (under 5) to 8 (500 and over); 0 with
    /// no orders. Coarser than the [`crate::price_band`] tags (code 1 joins `price:0-1`,
    /// `price:1-2` and `price:2-5`), and every code's edge is a tag's edge, so each tag falls
    /// in exactly one code.
    pub spend_band: u32,
    /// Lifecycle stage: 1 new, 2 active, 3 dormant, 4 churned; 0 without a user.
    pub segment: u32,
}

impl Context {
    /// The code of a slot name (see [`Context::slot`]).
    pub fn slot_code(name: &str) -> u32 {
        match name {
            "home" => 1,
            "search" => 2,
            "product" => 3,
            "cart" => 4,
            "checkout" => 5,
            "email" => 6,
            _ => 0,
        }
    }

    /// The code of a price band (see [`Context::spend_band`]).
    pub fn band_code(price: f32) -> u32 {
        const EDGES: [f32; 7] = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
        if price.is_nan() || price <= 0.0 {
            return 0;
        }
        1 + crate::narrow::u32_from(EDGES.iter().filter(|&&e| price >= e).count())
    }

    /// The block as it sits in the buffer for `n` candidates.
    pub fn encode(&self, n: u32) -> [u8; CONTEXT_BYTES] {
        let words = [
            ABI_VERSION,
            n,
            self.k,
            self.scenario,
            self.slot,
            self.tier,
            self.spend_band,
            self.segment,
        ];
        let mut out = [0u8; CONTEXT_BYTES];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Where each part of the shared buffer lies, as byte offsets from the pointer
/// `recostore_input(n)` returned: context | ids | one column per feature | scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Candidates.
    pub n: usize,
    /// Requested feature columns.
    pub columns: usize,
}

impl Layout {
    /// Offset of the candidate ids (`n` little-endian `u32`).
    pub fn ids(&self) -> usize {
        CONTEXT_BYTES
    }

    /// Offset of feature column `c` (`n` little-endian `f32`).
    pub fn column(&self, c: usize) -> usize {
        CONTEXT_BYTES + 4 * self.n * (1 + c)
    }

    /// Offset of the scores the plugin writes (`n` little-endian `f32`).
    pub fn scores(&self) -> usize {
        self.column(self.columns)
    }

    /// Size of the whole buffer.
    pub fn bytes(&self) -> usize {
        self.scores() + 4 * self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bits_are_dense() {
        for (i, f) in Feature::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i);
            assert_eq!(Feature::from_name(f.name()), Some(f));
        }
        assert!(FeatureSet::from_mask(1 << 13).is_none());
        let set = FeatureSet::from_mask(0b101).expect("known bits");
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Feature::Similarity, Feature::Popularity]
        );
    }

    #[test]
    fn layout_places_scores_after_every_column() {
        let l = Layout { n: 10, columns: 2 };
        assert_eq!(l.ids(), 32);
        assert_eq!(l.column(0), 72);
        assert_eq!(l.column(1), 112);
        assert_eq!(l.scores(), 152);
        assert_eq!(l.bytes(), 192);
    }

    #[test]
    fn bands_match_the_price_band_tags() {
        for (p, code) in [
            (0.0, 0),
            (1.0, 1),
            (5.0, 2),
            (19.9, 3),
            (60.0, 5),
            (900.0, 8),
        ] {
            assert_eq!(Context::band_code(p), code, "price {p}");
        }
    }
}
