//! Filters and exclusions, and their compiled form: column checks the scan runs on each
//! candidate *before* it may enter the top-k, so a selective filter still yields `k` results
//! whenever `k` matching items exist (no post-filtering of a short list).

use serde::{Deserialize, Serialize};

use crate::codec::StoredItem;
use crate::delta::index::Run;
use crate::delta::{Delta, UNKNOWN_CATEGORY};
use crate::error::{Error, Result};
use crate::segment::format::ArchivedItemTable;
use crate::segment::read::bit;
use crate::snapshot::Snapshot;

/// Which items may be recommended. All conditions must hold. The default allows everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Keep only items in one of these categories. A category matches itself and everything
    /// below it: `kitchen` matches `kitchen` and `kitchen/mugs`, not `kitchenware`.
    pub categories: Vec<String>,
    /// Drop items in any of these categories (same matching).
    pub exclude_categories: Vec<String>,
    /// Keep only items priced at least this.
    pub min_price: Option<f32>,
    /// Keep only items priced at most this.
    pub max_price: Option<f32>,
    /// Keep only items with stock above zero.
    pub in_stock: bool,
    /// Keep only items carrying every one of these tags.
    pub must_tags: Vec<String>,
    /// Drop items carrying any of these tags.
    pub must_not_tags: Vec<String>,
    /// Never recommend these item ids (already in the cart, already bought, …).
    pub exclude_items: Vec<String>,
}

impl Filter {
    /// A filter that allows every item.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Also require category `c` (or one below it); several calls allow any of them.
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.categories.push(c.into());
        self
    }

    /// Drop category `c` and everything below it.
    pub fn exclude_category(mut self, c: impl Into<String>) -> Self {
        self.exclude_categories.push(c.into());
        self
    }

    /// Keep prices in `min..=max`.
    pub fn price(mut self, min: f32, max: f32) -> Self {
        self.min_price = Some(min);
        self.max_price = Some(max);
        self
    }

    /// Keep only items in stock.
    pub fn in_stock(mut self) -> Self {
        self.in_stock = true;
        self
    }

    /// Require tag `t`.
    pub fn must_have(mut self, t: impl Into<String>) -> Self {
        self.must_tags.push(t.into());
        self
    }

    /// Forbid tag `t`.
    pub fn must_not_have(mut self, t: impl Into<String>) -> Self {
        self.must_not_tags.push(t.into());
        self
    }

    /// Never return item `id`.
    pub fn exclude(mut self, id: impl Into<String>) -> Self {
        self.exclude_items.push(id.into());
        self
    }

    /// Reject filters that can only be mistakes (NaN bounds, an empty price range).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidQuery { reason });
        for (name, v) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if v.is_some_and(|p| p.is_nan()) {
                return bad(format!("{name} is NaN"));
            }
        }
        if let Some(c) = self
            .categories
            .iter()
            .chain(&self.exclude_categories)
            .find(|c| c.trim_matches('/').is_empty())
        {
            return bad(format!(
                "category `{c}` is empty; name a category path such as `kitchen/mugs`"
            ));
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price) {
            if lo > hi {
                return bad(format!(
                    "min_price {lo} is above max_price {hi}, so nothing could match"
                ));
            }
        }
        Ok(())
    }
}

/// Does category path `path` fall under `rule`?
fn under(path: &str, rule: &str) -> bool {
    let rule = rule.trim_end_matches('/');
    path == rule
        || (path.len() > rule.len()
            && path.starts_with(rule)
            && path.as_bytes()[rule.len()] == b'/')
}

/// A filter bound to one snapshot: names resolved to ids, categories to a per-id table.
pub(crate) struct Compiled<'a> {
    items: &'a ArchivedItemTable,
    /// The writes over `items`: re-tagged items are not the segment's to offer, and
    /// attribute-only ones are checked against their new row.
    overlay: Option<&'a Delta>,
    /// When `items` is a run of the delta's index: the delta and the run, so a slot is offered
    /// only while it is its item's current row. Ids are the run's local ids.
    run: Option<(&'a Delta, &'a Run)>,
    /// Per segment category id: allowed? `None` when no category rule is set.
    category_ok: Option<Vec<bool>>,
    includes: Vec<String>,
    excludes: Vec<String>,
    min_price: f32,
    max_price: f32,
    in_stock: bool,
    must: Vec<u32>,
    must_not: Vec<u32>,
    /// Excluded dense ids, sorted (binary search beats hashing for the handful a query has).
    excluded: Vec<u32>,
    /// A required tag is unknown to the store: nothing can match.
    impossible: bool,
    /// Only the live/shadow/exclusion checks are needed.
    plain: bool,
}

impl<'a> Compiled<'a> {
    /// Compile `f` against `snap`, also excluding the dense ids in `also_exclude`.
    pub fn new(snap: &'a Snapshot, f: &Filter, also_exclude: Option<u32>) -> Compiled<'a> {
        let mut c = Compiled::bare(&snap.seg().items, Some(&snap.delta));
        let tag = |n: &String| snap.tag_id(n);
        c.impossible = f.must_tags.iter().any(|n| tag(n).is_none());
        c.must = f.must_tags.iter().filter_map(tag).collect();
        c.must_not = f.must_not_tags.iter().filter_map(tag).collect();
        c.excluded = f
            .exclude_items
            .iter()
            .filter_map(|n| snap.item_id(n))
            .chain(also_exclude)
            .collect();
        c.excluded.sort_unstable();
        c.includes = f.categories.clone();
        c.excludes = f.exclude_categories.clone();
        if !c.includes.is_empty() || !c.excludes.is_empty() {
            let cats = &c.items.categories;
            c.category_ok = Some(
                (0..crate::narrow::u32_from(cats.len()))
                    .map(|i| c.category_allows(cats.get(i).unwrap_or("")))
                    .collect(),
            );
        }
        c.min_price = f.min_price.unwrap_or(f32::NEG_INFINITY);
        c.max_price = f.max_price.unwrap_or(f32::INFINITY);
        c.in_stock = f.in_stock;
        c.plain = c.category_ok.is_none()
            && f.min_price.is_none()
            && f.max_price.is_none()
            && !c.in_stock
            && c.must.is_empty()
            && c.must_not.is_empty();
        c
    }

    /// No conditions beyond liveness: used when building neighbour lists over a bare segment.
    pub fn bare(items: &'a ArchivedItemTable, overlay: Option<&'a Delta>) -> Compiled<'a> {
        Compiled {
            items,
            overlay,
            run: None,
            category_ok: None,
            includes: Vec::new(),
            excludes: Vec::new(),
            min_price: f32::NEG_INFINITY,
            max_price: f32::INFINITY,
            in_stock: false,
            must: Vec::new(),
            must_not: Vec::new(),
            excluded: Vec::new(),
            impossible: false,
            plain: true,
        }
    }

    /// The same filter over a run of the delta's index: category rules against the run's
    /// own category dictionary, excluded ids translated to the run's local ids, and a slot
    /// allowed only while it is its item's current row in `delta`.
    pub fn for_run(&self, delta: &'a Delta, run: &'a Run) -> Compiled<'a> {
        let items = run.table();
        let mut c = Compiled {
            items,
            overlay: None,
            run: Some((delta, run)),
            category_ok: None,
            includes: self.includes.clone(),
            excludes: self.excludes.clone(),
            min_price: self.min_price,
            max_price: self.max_price,
            in_stock: self.in_stock,
            must: self.must.clone(),
            must_not: self.must_not.clone(),
            excluded: self.excluded.iter().filter_map(|&g| run.local(g)).collect(),
            impossible: self.impossible,
            plain: self.plain,
        };
        if self.category_ok.is_some() {
            let cats = &items.categories;
            c.category_ok = Some(
                (0..crate::narrow::u32_from(cats.len()))
                    .map(|i| c.category_allows(cats.get(i).unwrap_or("")))
                    .collect(),
            );
        }
        c
    }

    /// Exclude one more dense id.
    pub fn exclude(&mut self, id: u32) {
        if let Err(at) = self.excluded.binary_search(&id) {
            self.excluded.insert(at, id);
        }
    }

    /// Exclude many dense ids at once.
    pub fn exclude_all(&mut self, ids: &[u32]) {
        self.excluded.extend_from_slice(ids);
        self.excluded.sort_unstable();
        self.excluded.dedup();
    }

    /// Whether no item can pass.
    pub fn impossible(&self) -> bool {
        self.impossible
    }

    fn category_allows(&self, path: &str) -> bool {
        (self.includes.is_empty() || self.includes.iter().any(|r| under(path, r)))
            && !self.excludes.iter().any(|r| under(path, r))
    }

    fn tags_allow(&self, has: impl Fn(u32) -> bool) -> bool {
        self.must.iter().all(|&t| has(t)) && !self.must_not.iter().any(|&t| has(t))
    }

    fn price_stock_allow(&self, price: f32, stock: u32) -> bool {
        price >= self.min_price && price <= self.max_price && (!self.in_stock || stock > 0)
    }

    /// May segment item `id` be offered from the segment's index? (Live, not re-tagged by
    /// the delta, not excluded, and passing every condition; an attribute-only write is
    /// judged by its new row.)
    #[inline]
    pub fn allows_segment(&self, id: u32) -> bool {
        let t = self.items;
        if !bit(&t.live, id as usize) {
            return false;
        }
        if let Some((d, run)) = self.run {
            if !run.current(d, id) {
                return false;
            }
        }
        if let Some(d) = self.overlay {
            if d.item_shadow.get(id) {
                return self.allows_overlaid(d, id);
            }
        }
        if !self.excluded.is_empty() && self.excluded.binary_search(&id).is_ok() {
            return false;
        }
        if self.plain {
            return true;
        }
        if self.impossible {
            return false;
        }
        let i = id as usize;
        let category = t.category.get(i).map_or(u32::MAX, |c| c.to_native());
        let price = t.price.get(i).map_or(0.0, |p| p.to_native());
        let stock = t.stock.get(i).map_or(0, |s| s.to_native());
        self.conditions_allow(id, category, price, stock)
    }

    /// The filter's conditions for segment item `id` with these attributes (its tags are the
    /// segment's).
    #[inline]
    fn conditions_allow(&self, id: u32, category: u32, price: f32, stock: u32) -> bool {
        if let Some(ok) = &self.category_ok {
            if !ok.get(category as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if !self.price_stock_allow(price, stock) {
            return false;
        }
        if self.must.is_empty() && self.must_not.is_empty() {
            return true;
        }
        let (tags, _) = self.items.forward.row(id);
        self.tags_allow(|x| tags.binary_search_by_key(&x, |v| v.to_native()).is_ok())
    }

    /// The slow half of [`Compiled::allows_segment`], for an item the delta overrides: a
    /// re-tagged one is not the segment's to offer; an attribute-only one is judged by its new
    /// attributes (a dense column, no map look-up) and the segment's tags, which are its own.
    #[cold]
    fn allows_overlaid(&self, d: &Delta, id: u32) -> bool {
        if d.retag_shadow.get(id) {
            return false;
        }
        if !self.excluded.is_empty() && self.excluded.binary_search(&id).is_ok() {
            return false;
        }
        if self.plain {
            return true;
        }
        if self.impossible {
            return false;
        }
        let a = d.attrs.get(id);
        if a.category == UNKNOWN_CATEGORY && self.category_ok.is_some() {
            // A category the segment has never seen: only the row has its name.
            return d
                .items
                .get(&id)
                .and_then(|e| e.row.as_ref())
                .is_some_and(|r| self.allows_row(id, r));
        }
        self.conditions_allow(id, a.category, a.price, a.stock)
    }

    /// May delta item `id` with contents `row` be returned?
    pub fn allows_row(&self, id: u32, row: &StoredItem) -> bool {
        if self.impossible || self.excluded.binary_search(&id).is_ok() {
            return false;
        }
        self.category_allows(&row.category)
            && self.price_stock_allow(row.price, row.stock)
            && self.tags_allow(|x| row.tags.binary_search_by_key(&x, |p| p.0).is_ok())
    }

    /// May item `id` (segment or delta) be returned?
    pub fn allows(&self, snap: &Snapshot, id: u32) -> bool {
        if snap.delta.item_shadow.get(id) {
            return snap
                .delta
                .items
                .get(&id)
                .and_then(|e| e.row.as_ref())
                .is_some_and(|r| self.allows_row(id, r));
        }
        self.allows_segment(id)
    }

    /// If the filter itself names a small candidate set in the segment, the ids to check:
    /// the shortest required tag's posting list, or the members of the allowed categories.
    /// `None` when the filter does not narrow the segment, or the set exceeds `limit`.
    pub fn candidates(&self, limit: usize) -> Option<Vec<u32>> {
        if self.impossible {
            return Some(Vec::new());
        }
        let by_tag = self
            .must
            .iter()
            .map(|&t| self.items.postings.list(t))
            .min_by_key(|l| l.len());
        let by_cat = self
            .category_ok
            .as_ref()
            .filter(|_| !self.includes.is_empty())
            .map(|ok| {
                ok.iter()
                    .enumerate()
                    .filter(|(_, &a)| a)
                    .map(|(c, _)| {
                        self.items
                            .category_items
                            .get(crate::narrow::u32_from(c))
                            .len()
                    })
                    .sum::<usize>()
            });
        // Attribute-only writes that moved an item between categories: the segment's lists
        // place it where it was, so every such item is a candidate too (checked on its row).
        let moved = self
            .overlay
            .map(|d| &d.recategorised)
            .filter(|m| !m.is_empty());
        let tag_len = by_tag.map_or(usize::MAX, |l| l.len());
        let cat_len = by_cat.map_or(usize::MAX, |n| n + moved.map_or(0, |m| m.len()));
        if tag_len.min(cat_len) > limit {
            return None;
        }
        if tag_len <= cat_len {
            let l = by_tag?;
            return Some(l.items.iter().map(|v| v.to_native()).collect());
        }
        let ok = self.category_ok.as_ref()?;
        let mut ids: Vec<u32> = ok
            .iter()
            .enumerate()
            .filter(|(_, &a)| a)
            .flat_map(|(c, _)| {
                self.items
                    .category_items
                    .get(crate::narrow::u32_from(c))
                    .iter()
                    .map(|v| v.to_native())
            })
            .chain(moved.into_iter().flatten().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_whole_path_segments() {
        assert!(under("kitchen", "kitchen"));
        assert!(under("kitchen/mugs", "kitchen"));
        assert!(under("kitchen/mugs", "kitchen/"));
        assert!(!under("kitchenware", "kitchen"));
        assert!(!under("kitchen", "kitchen/mugs"));
    }

    #[test]
    fn contradictory_price_range_is_rejected() {
        assert!(Filter::new().price(10.0, 5.0).validate().is_err());
        assert!(Filter::new().price(5.0, 10.0).validate().is_ok());
        let nan = Filter {
            min_price: Some(f32::NAN),
            ..Filter::default()
        };
        assert!(nan.validate().is_err());
    }
}
