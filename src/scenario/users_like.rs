//! `users-like`: the users whose tag profiles (explicit plus derived) are most like a user's,
//! by exact cosine.
//!
//! The scan goes over `UserMatrix`, every user's profile laid out contiguously, which the
//! store keeps between queries; the users whose rows are stale for the query's snapshot are
//! scored from the snapshot directly (`tests/users_like.rs` checks both against an oracle).

use std::sync::Arc;

use serde::Serialize;

use super::user_matrix::{explicit_tags, score_direct, UserMatrix};
use crate::error::{Error, Result};
use crate::model::display_id;
use crate::search::MAX_K;
use crate::snapshot::Snapshot;

/// The asking user's profile, laid out for the scan over every other user: a bitset of its
/// tags (a few KiB, so it stays in L1 cache) in front of the dense weights (one float per tag
/// id, shifted by one so slot 0 is a constant zero). Most tags of other users are not in the
/// query, and for those only the bitset and slot 0 are read.
struct QueryTags {
    bits: Vec<u64>,
    dense: Vec<f32>,
}

impl QueryTags {
    fn new(q: &[(u32, f32)], tag_bound: u32) -> QueryTags {
        let n = tag_bound as usize;
        let mut t = QueryTags {
            bits: vec![0; n.div_ceil(64)],
            dense: vec![0.0; n + 1],
        };
        for &(tag, w) in q {
            if let (Some(d), Some(b)) = (
                t.dense.get_mut(tag as usize + 1),
                t.bits.get_mut(tag as usize / 64),
            ) {
                *d = w;
                *b |= 1 << (tag % 64);
            }
        }
        t
    }

    /// The query's weight of `tag` (0 if absent). Branch-free: whether another user's tag is
    /// in the query is a coin flip to the branch predictor, so a miss reads slot 0 (always
    /// 0.0, always cached) instead of jumping.
    #[inline]
    fn weight(&self, tag: u32) -> f32 {
        let i = tag as usize;
        let word = self.bits.get(i / 64).copied().unwrap_or(0);
        let slot = (i + 1) * (word >> (i % 64) & 1) as usize;
        self.dense.get(slot).copied().unwrap_or(0.0)
    }
}

/// The `k` users (other than `me`) whose profiles have the highest cosine with `query`, best
/// first, ties by id: the matrix's current rows, then the stale users from `snap`.
fn scan_users(
    snap: &Snapshot,
    matrix: &UserMatrix,
    me: u32,
    query: &QueryTags,
    half_life: f64,
    q_norm: f32,
    k: usize,
) -> Vec<(f32, u32)> {
    let now = snap.activity.now();
    let stale = matrix.stale(snap);
    let mut top = crate::search::TopK::new(k);
    let mut offer = |id: u32, dot: f32, norm2: f32| {
        if dot > 0.0 && norm2 > 0.0 {
            top.offer(id, dot / (q_norm * norm2.sqrt()));
        }
    };
    matrix.scan(&stale, me, now, half_life, |t| query.weight(t), &mut offer);
    let mut explicit = Vec::new();
    for &id in &stale.ids {
        if id == me || !explicit_tags(snap, id, &mut explicit) {
            continue;
        }
        let (derived, f) = match snap.activity.user(id) {
            Some(s) => (
                &s.derived[..],
                crate::activity::user::decay(1.0, s.derived_at, now, half_life),
            ),
            None => (&[][..], 1.0),
        };
        let (dot, norm2) = score_direct(&explicit, derived, f, |t| query.weight(t));
        offer(id, dot, norm2);
    }
    top.into_sorted()
        .into_iter()
        .map(|h| (h.score, h.id))
        .collect()
}

impl super::Derivations {
    /// A matrix that serves `snap`: the kept one if it does and is not too stale, else a
    /// new one, kept for later queries. Reading a kept one takes no lock; concurrent queries
    /// that need a new one wait for one build (see `single_flight`).
    fn user_matrix(&self, snap: &Snapshot) -> Arc<UserMatrix> {
        let fresh_enough =
            |m: &UserMatrix| m.serves(snap) && m.stale(snap).ids.len() <= m.len() / 8 + MIN_REBUILD;
        self.users_matrix
            .get_or_build(fresh_enough, || UserMatrix::build(snap))
    }
}

/// Stale rows a matrix tolerates whatever its size: below this, scoring them directly is
/// cheaper than a new matrix.
const MIN_REBUILD: usize = 1024;

/// A user similar to the asking one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserMatch {
    /// The other user's id.
    pub id: String,
    /// Cosine similarity of the two tag profiles.
    pub score: f32,
    /// The shared tags that contributed most, with each one's share of `score`.
    pub matched: Vec<(String, f32)>,
}

/// The `k` users whose tag profiles (explicit plus derived) are most like `user`'s in `snap`,
/// best first (ties by id). See [`crate::View::users_like`].
pub(crate) fn users_like(
    env: &super::Env<'_>,
    snap: &Snapshot,
    user: &str,
    k: usize,
) -> Result<Vec<UserMatch>> {
    if k > MAX_K {
        return Err(Error::InvalidQuery {
            reason: format!("k = {k} is above the limit of {MAX_K}"),
        });
    }
    let not_found = || Error::NotFound {
        what: "user",
        id: display_id(user),
    };
    let me = snap
        .user_id(user)
        .filter(|&u| snap.user_row(u).is_some())
        .ok_or_else(not_found)?;
    let cfg = env.config;
    let q = super::personal::profile(snap, cfg, me);
    let q_norm = crate::segment::builder::l2_norm(q.iter().map(|p| p.1));
    if q.is_empty() || q_norm <= 0.0 || k == 0 {
        return Ok(Vec::new());
    }
    let query = QueryTags::new(&q, snap.tag_id_bound());
    let matrix = env.derived.user_matrix(snap);
    let half_life = cfg.user_half_life_secs();
    let top = scan_users(snap, &matrix, me, &query, half_life, q_norm, k);
    Ok(top
        .into_iter()
        .filter_map(|(score, id)| {
            let v = super::personal::profile(snap, cfg, id);
            let norm = crate::segment::builder::l2_norm(v.iter().map(|p| p.1));
            let mut matched: Vec<(String, f32)> = v
                .iter()
                .filter_map(|&(t, w)| {
                    let qw = query.weight(t);
                    (qw > 0.0)
                        .then(|| Some((snap.tag_name(t)?.to_string(), qw * w / (q_norm * norm))))?
                })
                .collect();
            matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            matched.truncate(crate::search::explain::EXPLAIN_TAGS);
            Some(UserMatch {
                id: snap.user_name(id)?,
                score,
                matched,
            })
        })
        .collect())
}
