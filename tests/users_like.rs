//! `users_like` against a brute-force oracle built only from the public API.
//!
//! Random shops: users with and without explicit tags, behaviour that derives more tags
//! (decayed over time), users in the segment and in the delta, deleted users. The oracle takes
//! each user's profile as `get_user(..).tags` plus `user_activity(..).derived_tags` and ranks
//! every other user by cosine. The scan must return the same scores, best first, ties by age.
//! Asks mid-way leave the store's profile matrix behind, so later asks mix its rows with users
//! changed since (scored from the snapshot).

use std::collections::BTreeMap;

use proptest::prelude::*;
use recostore::{Config, Event, Item, Store, User};

const TAGS: usize = 10;
const ITEMS: usize = 12;
const USERS: usize = 30;

fn profile(store: &Store, user: &str) -> BTreeMap<String, f32> {
    let mut p = BTreeMap::new();
    if let Some(u) = store.get_user(user) {
        for (t, w) in u.tags {
            *p.entry(t).or_insert(0.0) += w;
        }
    }
    if let Some(a) = store.user_activity(user) {
        for (t, w) in a.derived_tags {
            *p.entry(t).or_insert(0.0) += w;
        }
    }
    p
}

fn cosine(a: &BTreeMap<String, f32>, b: &BTreeMap<String, f32>) -> f32 {
    let dot: f32 = a.iter().filter_map(|(t, w)| Some(w * b.get(t)?)).sum();
    let na: f32 = a.values().map(|w| w * w).sum::<f32>().sqrt();
    let nb: f32 = b.values().map(|w| w * w).sum::<f32>().sqrt();
    if na > 0.0 && nb > 0.0 {
        dot / (na * nb)
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
enum Step {
    Tags(usize, Vec<(usize, u8)>),
    Buy(usize, usize, u64),
    View(usize, usize, u64),
    Delete(usize),
    Rebuild,
    /// Ask (and check) mid-way: the store keeps what the scan built, so later asks see rows
    /// that changed since.
    Ask(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..USERS, prop::collection::btree_map(0..TAGS, 1u8..4, 0..4))
            .prop_map(|(u, t)| Step::Tags(u, t.into_iter().collect())),
        4 => (0..USERS, 0..ITEMS, 0u64..40).prop_map(|(u, i, d)| Step::Buy(u, i, d)),
        4 => (0..USERS, 0..ITEMS, 0u64..40).prop_map(|(u, i, d)| Step::View(u, i, d)),
        1 => (0..USERS).prop_map(Step::Delete),
        1 => Just(Step::Rebuild),
        2 => (0..USERS).prop_map(Step::Ask),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn users_like_equals_the_oracle(
        steps in prop::collection::vec(step(), 1..80),
        asks in prop::collection::vec((0..USERS, 1usize..8), 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().rebuild_threshold(None).user_tag_half_life_days(1.0);
        let store = Store::open_with(dir.path(), config).unwrap();
        let items: Vec<Item> = (0..ITEMS)
            .map(|i| {
                Item::new(
                    format!("p{i}"),
                    [(format!("t{}", i % TAGS), 1.0), (format!("t{}", (i * 7 + 3) % TAGS), 0.5)],
                )
            })
            .collect();
        store.upsert_items(&items).unwrap();
        let day = 86_400;
        for s in &steps {
            match s {
                Step::Tags(u, tags) => store
                    .upsert_user(&User::new(
                        format!("u{u}"),
                        tags.iter().map(|&(t, w)| (format!("t{t}"), f32::from(w))),
                    ))
                    .unwrap(),
                Step::Buy(u, i, d) => {
                    store
                        .record_event(&Event::purchase(format!("u{u}"), format!("p{i}"), 1, 5.0, d * day))
                        .unwrap();
                }
                Step::View(u, i, d) => {
                    store
                        .record_event(&Event::view(format!("u{u}"), format!("p{i}"), d * day))
                        .unwrap();
                }
                Step::Delete(u) => {
                    store.delete_user(&format!("u{u}")).unwrap();
                }
                Step::Rebuild => {
                    store.rebuild().unwrap();
                }
                Step::Ask(u) => check(&store, &[(*u, 4)])?,
            }
        }
        check(&store, &asks)?;
    }
}

/// Every ask in `asks` against the oracle.
fn check(store: &Store, asks: &[(usize, usize)]) -> Result<(), TestCaseError> {
    let existing: Vec<String> = (0..USERS)
        .map(|u| format!("u{u}"))
        .filter(|u| store.get_user(u).is_some())
        .collect();
    let profiles: BTreeMap<&str, BTreeMap<String, f32>> = existing
        .iter()
        .map(|u| (u.as_str(), profile(store, u)))
        .collect();
    for &(u, k) in asks {
        let me = format!("u{u}");
        let got = store.users_like(&me, k);
        let Some(mine) = profiles.get(me.as_str()) else {
            prop_assert!(got.is_err(), "{me} does not exist: {got:?}");
            continue;
        };
        let got = got.unwrap();
        let mut want: Vec<(f32, &str)> = profiles
            .iter()
            .filter(|(other, _)| **other != me)
            .map(|(other, p)| (cosine(mine, p), *other))
            .filter(|(s, _)| *s > 0.0)
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        want.truncate(k);
        prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g.score - w.0).abs() < 1e-4, "{:?} vs {:?}", got, want);
            let oracle = cosine(mine, &profiles[g.id.as_str()]);
            prop_assert!(
                (g.score - oracle).abs() < 1e-4,
                "{} scored {} not {}",
                g.id,
                g.score,
                oracle
            );
        }
        for pair in got.windows(2) {
            prop_assert!(pair[0].score >= pair[1].score, "best first: {:?}", got);
        }
    }
    Ok(())
}
