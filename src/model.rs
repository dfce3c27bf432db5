//! The records callers write and read: items and users with weighted tags.
//!
//! These are the *public*, string-keyed shapes. Inside the store every id and tag name is a
//! dense `u32` (see [`crate::codec`] and [`crate::segment`]); conversion happens at the API edge.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `price:` tag of a price: bands on a 1-2-5 series, `price:0-1` up to `price:500+`
/// (a price below 0, or NaN, falls in the first band).
///
/// One scale for everything that writes price tags (the Online Retail importer, the demo
/// catalogue, and the band a purchase passes to a user when the item has no `price:` tag),
/// so a user's band and an item's band are the same tag and can match. The 1-2-5 series is
/// fine where Online Retail's prices sit (most under 10) and still separates a shop's dearer
/// items.
pub fn price_band(price: f32) -> &'static str {
    const BANDS: [(f32, &str); 9] = [
        (1.0, "price:0-1"),
        (2.0, "price:1-2"),
        (5.0, "price:2-5"),
        (10.0, "price:5-10"),
        (20.0, "price:10-20"),
        (50.0, "price:20-50"),
        (100.0, "price:50-100"),
        (200.0, "price:100-200"),
        (500.0, "price:200-500"),
    ];
    BANDS
        .iter()
        .find(|(below, _)| price.is_nan() || price < *below)
        .map_or("price:500+", |(_, tag)| tag)
}

/// Longest id (item, user) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Longest tag name accepted, in bytes.
pub const MAX_TAG_BYTES: usize = 1024;
/// Longest category path or title accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// A weighted tag such as `("colour:red", 1.0)`. Names are namespaced by convention
/// (`category:`, `brand:`, `colour:`, `size:`, `price:`, `for:` ...).
pub type Tag = (String, f32);

/// A catalogue item: its tags plus the attributes filters and ranking need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Item {
    /// The shop's id, e.g. `"sku-123"`. Non-empty, at most [`MAX_ID_BYTES`].
    pub id: String,
    /// Weighted tags. Weights must be finite and non-negative; zero weights are dropped.
    /// Names must be unique within the record.
    pub tags: Vec<Tag>,
    /// Human-readable title, shown in explanations and the CLI. May be empty.
    pub title: String,
    /// Category path such as `kitchen/mugs`. May be empty.
    pub category: String,
    /// Unit price in the shop's currency. Finite and non-negative.
    pub price: f32,
    /// Units in stock.
    pub stock: u32,
    /// Only members may buy it (campaigns show these first to members).
    pub members_only: bool,
    /// Creation time, seconds since the Unix epoch (0 if unknown).
    pub created_at: u64,
}

/// A customer: tags the app sets plus tags derived from behaviour, and recent items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct User {
    /// The shop's id, e.g. `"user-9"`. Non-empty, at most [`MAX_ID_BYTES`].
    pub id: String,
    /// Weighted tags (explicit such as `tier:prime`, or derived such as `colour:red`).
    pub tags: Vec<Tag>,
    /// Item ids the user interacted with most recently, newest last. Ids that are not (yet)
    /// in the store are kept out; the list is capped by `Config::max_recent_items`.
    pub recent_items: Vec<String>,
}

impl Item {
    /// An item with an id and tags and default attributes.
    pub fn new(
        id: impl Into<String>,
        tags: impl IntoIterator<Item = (impl Into<String>, f32)>,
    ) -> Self {
        Item {
            id: id.into(),
            tags: tags.into_iter().map(|(n, w)| (n.into(), w)).collect(),
            ..Item::default()
        }
    }

    /// Set the title.
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }

    /// Set the category path (`kitchen/mugs`).
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.category = c.into();
        self
    }

    /// Set the price.
    pub fn price(mut self, p: f32) -> Self {
        self.price = p;
        self
    }

    /// Set the stock.
    pub fn stock(mut self, s: u32) -> Self {
        self.stock = s;
        self
    }
}

impl User {
    /// A user with an id and tags.
    pub fn new(
        id: impl Into<String>,
        tags: impl IntoIterator<Item = (impl Into<String>, f32)>,
    ) -> Self {
        User {
            id: id.into(),
            tags: tags.into_iter().map(|(n, w)| (n.into(), w)).collect(),
            recent_items: Vec::new(),
        }
    }
}

pub(crate) use crate::error::display_id;

pub(crate) fn validate_id(what: &'static str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(what, id, "the id is empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            what,
            id,
            format!("the id is {} bytes, the limit is {MAX_ID_BYTES}", id.len()),
        ));
    }
    Ok(())
}

/// Check tags and return them with zero weights dropped. Rejects the whole record on any fault
/// so nothing is stored half-written.
pub(crate) fn validate_tags<'a>(
    what: &'static str,
    id: &str,
    tags: &'a [Tag],
    max_tags: usize,
) -> Result<Vec<(&'a str, f32)>> {
    check_tag_count(what, id, tags, max_tags)?;
    let mut out: Vec<(&str, f32)> = Vec::with_capacity(tags.len());
    for (name, w) in tags {
        check_tag(what, id, name, *w)?;
        if *w > 0.0 {
            out.push((name.as_str(), *w));
        }
    }
    // Every name given, zero weights included: ("a", 0) beside ("a", 0.5) is as ambiguous as
    // two positive weights (found by the store_model fuzz target).
    let mut names: Vec<&str> = tags.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(dup) = names.windows(2).find(|p| p[0] == p[1]) {
        return Err(duplicate_tag(what, id, dup[0]));
    }
    Ok(out)
}

fn check_tag_count(what: &'static str, id: &str, tags: &[Tag], max_tags: usize) -> Result<()> {
    if tags.len() > max_tags {
        return Err(Error::invalid(
            what,
            id,
            format!(
                "{} tags, the limit is {max_tags} (Config::max_tags_per_record)",
                tags.len()
            ),
        ));
    }
    Ok(())
}

/// The checks on one tag's name and weight, with the error each fault gets.
fn check_tag(what: &'static str, id: &str, name: &str, w: f32) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(what, id, "a tag name is empty"));
    }
    if name.len() > MAX_TAG_BYTES {
        return Err(Error::invalid(
            what,
            id,
            format!(
                "tag `{}` is {} bytes, the limit is {MAX_TAG_BYTES}",
                display_id(name),
                name.len()
            ),
        ));
    }
    if !w.is_finite() || w < 0.0 {
        return Err(Error::invalid(
            what,
            id,
            format!(
                "tag `{}` has weight {w}; weights must be finite and >= 0",
                display_id(name)
            ),
        ));
    }
    if w.is_subnormal() {
        return Err(Error::invalid(
            what,
            id,
            format!(
                "tag `{}` has weight {w}, below the smallest normal f32 ({:e}); use 0 to \
                 leave the tag out",
                display_id(name),
                f32::MIN_POSITIVE
            ),
        ));
    }
    Ok(())
}

fn duplicate_tag(what: &'static str, id: &str, name: &str) -> Error {
    Error::invalid(
        what,
        id,
        format!(
            "tag `{}` appears twice; merge the weights before writing",
            display_id(name)
        ),
    )
}

/// The checks on an item's own fields (everything but its tags).
fn check_item_fields(item: &Item) -> Result<()> {
    validate_id("item", &item.id)?;
    if !item.price.is_finite() || item.price < 0.0 {
        return Err(Error::invalid(
            "item",
            &item.id,
            format!("price {} must be finite and >= 0", item.price),
        ));
    }
    for (field, text) in [("title", &item.title), ("category", &item.category)] {
        if text.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid(
                "item",
                &item.id,
                format!(
                    "{field} is {} bytes, the limit is {MAX_TEXT_BYTES}",
                    text.len()
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_item(item: &Item, max_tags: usize) -> Result<Vec<(&str, f32)>> {
    check_item_fields(item)?;
    validate_tags("item", &item.id, &item.tags, max_tags)
}

/// A tag of a bulk load that passed validation: which of its part's distinct names it is
/// (see [`BulkPart::names`]) and its weight (positive).
#[derive(Clone, Copy)]
pub(crate) struct BulkTag {
    /// Index into the part's `names`.
    pub name: u32,
    /// The weight, > 0 (zero weights are dropped, as [`validate_tags`] does).
    pub weight: f32,
}

/// One validating thread's share of a bulk load: a contiguous run of its items.
pub(crate) struct BulkPart<'a> {
    /// Every item's positive tags, flat (a million small vectors would cost a million
    /// allocations).
    tags: Vec<BulkTag>,
    /// Where each item's run of `tags` ends.
    ends: Vec<usize>,
    /// The distinct tag names of this part in order of first appearance, with their xxh3.
    /// Naming tags by their place here is what lets the validating threads do the
    /// name look-ups: the single thread that hands out ids then resolves each distinct name
    /// once, and each tag by indexing an array.
    pub names: Vec<(u64, &'a str)>,
}

impl<'a> BulkPart<'a> {
    /// How many items the part holds.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Each item's tags, in item order.
    pub(crate) fn per_item(&self) -> impl Iterator<Item = &[BulkTag]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| &self.tags[a..b])
    }
}

/// The validated tags of a bulk load's items: one [`BulkPart`] per validating thread, in
/// item order.
pub(crate) struct BulkTags<'a> {
    parts: Vec<BulkPart<'a>>,
}

impl<'a> BulkTags<'a> {
    /// Validate `items` as one part, with the checks, order and errors of [`validate_item`]
    /// (the error is the first invalid item's). Duplicate names within an item are found by
    /// sorting their hashes (names are compared only where hashes are equal).
    pub(crate) fn validate(items: &'a [Item], max_tags: usize) -> Result<BulkTags<'a>> {
        let mut tags = Vec::with_capacity(items.iter().map(|i| i.tags.len()).sum());
        let mut ends = Vec::with_capacity(items.len());
        let mut names: Vec<(u64, &'a str)> = Vec::new();
        let mut known = crate::name_table::ArenaNames::default();
        let mut scratch: Vec<(u64, &'a str)> = Vec::new();
        // `name` indexes are u32: a record past that many tags is refused as too large.
        let max_tags = max_tags.min(u32::MAX as usize);
        for item in items {
            check_item_fields(item)?;
            check_tag_count("item", &item.id, &item.tags, max_tags)?;
            scratch.clear();
            for (name, w) in &item.tags {
                check_tag("item", &item.id, name, *w)?;
                let hash = crate::name_table::hash(name);
                scratch.push((hash, name.as_str()));
                if *w > 0.0 {
                    let at = match known.get(hash, name) {
                        Some(at) => at,
                        None => {
                            let at = crate::narrow::u32_from(names.len());
                            known.insert(hash, name, at);
                            names.push((hash, name.as_str()));
                            at
                        }
                    };
                    tags.push(BulkTag {
                        name: at,
                        weight: *w,
                    });
                }
            }
            scratch.sort_unstable();
            // The error names the alphabetically first repeated name, as `validate_tags`
            // (which sorts by name) does.
            let first_dup = scratch
                .windows(2)
                .filter(|p| p[0] == p[1])
                .map(|p| p[0].1)
                .min();
            if let Some(dup) = first_dup {
                return Err(duplicate_tag("item", &item.id, dup));
            }
            ends.push(tags.len());
        }
        Ok(BulkTags {
            parts: vec![BulkPart { tags, ends, names }],
        })
    }

    /// Append `later`'s items after this one's.
    pub(crate) fn append(&mut self, later: BulkTags<'a>) {
        self.parts.extend(later.parts);
    }

    /// The parts, in item order.
    pub(crate) fn parts(&self) -> &[BulkPart<'a>] {
        &self.parts
    }
}

pub(crate) fn validate_user(user: &User, max_tags: usize) -> Result<Vec<(&str, f32)>> {
    validate_id("user", &user.id)?;
    for r in &user.recent_items {
        validate_id("user", r).map_err(|_| {
            Error::invalid(
                "user",
                &user.id,
                format!("recent item id `{}` is empty or too long", display_id(r)),
            )
        })?;
    }
    validate_tags("user", &user.id, &user.tags, max_tags)
}
