//! The read API on [`Store`]: each call takes a [`View`] of the store as it is now and asks it.
//! Take a view yourself ([`Store::view`]) when several answers must agree with each other.

use super::Store;
use crate::error::Result;
use crate::scenario::{Ask, Served, UserMatch};
use crate::search::{Query, QueryStats, Recommendation};

impl Store {
    /// Run a similarity query ([`crate::View::query`] on the current view). Lock-free: it
    /// reads one snapshot and never waits on writers.
    pub fn query(&self, q: &Query) -> Result<Vec<Recommendation>> {
        self.view().query(q)
    }

    /// Like [`Store::query`], also reporting which path answered and how much it scored.
    pub fn query_with_stats(&self, q: &Query) -> Result<(Vec<Recommendation>, QueryStats)> {
        self.view().query_with_stats(q)
    }

    /// The `k` items most similar to item `id` by tag cosine ("more like this"), best first.
    pub fn similar_items(&self, id: &str, k: usize) -> Result<Vec<Recommendation>> {
        self.view().similar_items(id, k)
    }

    /// The `k` items that best match a weighted tag profile (e.g. a user's tags), best first.
    /// Tags unknown to the store are ignored.
    pub fn profile_items(&self, tags: &[(String, f32)], k: usize) -> Result<Vec<Recommendation>> {
        self.view().profile_items(tags, k)
    }

    /// Answer a scenario query. Lock-free: one snapshot, no waiting on writers.
    pub fn recommend(&self, ask: &Ask) -> Result<Vec<Recommendation>> {
        self.view().recommend(ask)
    }

    /// [`Store::recommend`], also saying which strategy and version ranked the answer and
    /// whether it fell back to the built-in ranker.
    pub fn serve(&self, ask: &Ask) -> Result<Served> {
        self.view().serve(ask)
    }

    /// The `k` users whose tag profiles (explicit plus derived) are most like `user`'s, best
    /// first. See [`crate::View::users_like`].
    pub fn users_like(&self, user: &str, k: usize) -> Result<Vec<UserMatch>> {
        self.view().users_like(user, k)
    }
}
