//! Several shops in one store on [`Store`]: opening a namespace, listing them, and the
//! records quota each write checks (the events quota is in `store/events.rs`).

use super::{lock, Inner, Store};
use crate::codec;
use crate::error::{Error, Result};
use crate::namespace::{validate_name, Quota, DEFAULT, DIR};
use crate::snapshot::Snapshot;
use crate::write::Pending;

impl Store {
    /// The namespace `name` of this store: a store of its own, with its own records, events,
    /// behaviour state, plugins, slots, figures and files, sharing this store's process and
    /// sled. The same ids in two namespaces never meet. Created at its first use; every call
    /// with the same name returns the same store (a clone of one handle). `"default"` is this
    /// store itself: what a store without namespaces always was.
    ///
    /// The namespace's quota is its entry in [`crate::Config::namespaces`], or
    /// [`crate::Config::quota`]. Its files live in `<dir>/ns/<name>/`, its sled keys under a
    /// prefix of its own (FORMAT.md, "Namespaces"). Closing this store closes the namespaces
    /// opened through it; a namespace handle an app still holds stays usable.
    ///
    /// Refused ([`Error::Namespace`]): a name other than 1 to 64 lowercase ASCII letters,
    /// digits, `-` and `_`; a call on a namespace's own store (namespaces do not nest); a replica
    /// (namespaces are not published yet).
    pub fn namespace(&self, name: &str) -> Result<Store> {
        self.open_namespace(name, None, true)
    }

    /// [`Store::namespace`] with `quota` instead of the configured one. A namespace already
    /// open keeps the quota it opened with: asking for another is refused
    /// ([`Error::Namespace`]); close the store and open it again to change it.
    pub fn namespace_with(&self, name: &str, quota: Quota) -> Result<Store> {
        self.open_namespace(name, Some(quota), true)
    }

    /// [`Store::namespace`] for a namespace that already holds something: an unknown name is
    /// refused with the names there are, and nothing is created (for tools that only read).
    pub fn existing_namespace(&self, name: &str) -> Result<Store> {
        self.open_namespace(name, None, false)
    }

    /// The names of this store's namespaces that hold anything, in byte order (the default
    /// namespace is not listed).
    pub fn namespaces(&self) -> Result<Vec<String>> {
        self.inner.tree.namespace_names()
    }

    /// This store's namespace: `None` for the default one (the store opened).
    pub fn namespace_name(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    fn open_namespace(&self, name: &str, quota: Option<Quota>, create: bool) -> Result<Store> {
        let refuse = |reason: String| Error::Namespace {
            name: crate::error::display_id(name),
            reason,
        };
        if let Some(own) = &self.inner.namespace {
            return Err(refuse(format!(
                "this is namespace `{own}`'s store, and namespaces do not nest: call namespace on the store Store::open returned"
            )));
        }
        if name == DEFAULT {
            if quota.is_some_and(|q| q != self.config().quota) {
                return Err(refuse(
                    "the default namespace is the store itself, whose quota is Config::quota; set it there".into(),
                ));
            }
            return Ok(self.clone());
        }
        validate_name(name)?;
        if self.inner.tree.is_read_only() {
            return Err(refuse(
                "this store is a replica, and namespaces are not published to replicas yet; ask the leader".into(),
            ));
        }
        let mut open = lock(&self.inner.namespaces);
        if let Some(store) = open.get(name) {
            if quota.is_some_and(|q| q != store.config().quota) {
                return Err(refuse(
                    "it is open with another quota, which stays while it is open; close the store and open it again to change it".into(),
                ));
            }
            return Ok(store.clone());
        }
        let names = self.inner.tree.namespace_names()?;
        let known = names.iter().any(|n| n == name);
        if !create && !known {
            return Err(refuse(if names.is_empty() {
                "no such namespace: this store has none besides `default`".into()
            } else {
                format!(
                    "no such namespace; this store has `default` and {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        }
        let mut config = self.config().clone();
        config.quota = quota.unwrap_or_else(|| config.quota_of(name).clone());
        config.namespaces.clear();
        // Before the mark below: a namespace that cannot open must not change the store.
        config.quota.validate(name)?;
        let dir = self.inner.dir.join(DIR).join(name);
        if !known {
            // Binaries from before namespaces would keep their keys in a compaction and drop
            // their plugin files: from the first namespace on, they refuse the store.
            // Under the writer lock: a bulk load raises the same mark.
            let _writes = lock(&self.inner.writer);
            let tree = &self.inner.tree;
            tree.insert(
                codec::META_FORMAT,
                codec::raised_format(tree, codec::NAMESPACED_FORMAT)?,
            )?;
            tree.flush()?;
        }
        let store = Store::open_in(
            dir,
            config,
            self.inner.tree.namespace(name),
            Some(name),
            Some(self),
        )?;
        open.insert(name.to_string(), store.clone());
        Ok(store)
    }

    /// `Err` when the events-per-second quota leaves no room for `n` events now.
    pub(crate) fn admit_events(&self, n: usize) -> Result<()> {
        match &self.inner.pace {
            Some(p) => p.admit(n),
            None => Ok(()),
        }
    }

    /// Give back the events quota a call took and did not use.
    pub(crate) fn refund_events(&self, n: usize) {
        if let Some(p) = &self.inner.pace {
            p.refund(n);
        }
    }

    /// The directory of the whole store: [`Store::dir`], or for a namespace the store's
    /// that holds it (`<dir>/ns/<name>` lies two levels down).
    pub(crate) fn root_dir(&self) -> &std::path::Path {
        let dir = self.dir();
        match self.inner.namespace {
            Some(_) => dir.parent().and_then(|p| p.parent()).unwrap_or(dir),
            None => dir,
        }
    }

    /// Wait until the events-per-second quota has room for `n` events (at most one
    /// second's worth) and take it: imports keep to the quota this way.
    pub(crate) fn pace_events(&self, n: usize) {
        if let Some(p) = &self.inner.pace {
            p.wait(n);
        }
    }

    /// The most events one call may carry under the events quota (`None`: no quota).
    pub(crate) fn events_burst(&self) -> Option<usize> {
        self.inner.pace.as_ref().map(|p| p.burst())
    }
}

impl Inner {
    /// [`Inner::check_records_quota`] for a bulk load adding `new_items` items.
    pub(super) fn check_bulk_records_quota(&self, base: &Snapshot, new_items: usize) -> Result<()> {
        let Some(max) = self.shared.config.quota.max_records else {
            return Ok(());
        };
        let before = (base.live_items() + base.live_users()) as u64;
        let after = before + new_items as u64;
        if new_items == 0 || after <= max {
            return Ok(());
        }
        Err(self.records_exceeded(max, before, after))
    }

    fn records_exceeded(&self, max: u64, before: u64, after: u64) -> Error {
        Error::QuotaExceeded {
            namespace: self.namespace.as_deref().unwrap_or(DEFAULT).to_string(),
            quota: "max_records",
            limit: max,
            detail: format!(
                "this write would take the records (items and users) from {before} to {after}; nothing of it was stored. Delete records, or raise the quota"
            ),
        }
    }

    /// `Err` when the write staged in `p` would take the records past
    /// [`Quota::max_records`]. A write that adds none passes, so updates and deletions work
    /// at (or, after the quota was lowered, above) the limit. Counting is a pass over the
    /// segment's live bitmaps and the delta, done only when a quota is set.
    pub(super) fn check_records_quota(&self, base: &Snapshot, p: &Pending<'_>) -> Result<()> {
        let Some(max) = self.shared.config.quota.max_records else {
            return Ok(());
        };
        let seg = base.seg();
        let before = crate::snapshot::live_items(seg, &base.delta)
            + crate::snapshot::live_users(seg, &base.delta);
        let after = crate::snapshot::live_items(p.seg, &p.delta)
            + crate::snapshot::live_users(p.seg, &p.delta);
        let (before, after) = (before as u64, after as u64);
        if after <= before || after <= max {
            return Ok(());
        }
        Err(self.records_exceeded(max, before, after))
    }
}
