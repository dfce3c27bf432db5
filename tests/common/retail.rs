//! The real Online Retail data set, imported, and the answers tests compare between a store
//! and its twin (the same import and writes, without the operation under test).
#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};

use recostore::import::{retail, ImportOptions};
use recostore::{Ask, Config, Scenario, Store};

/// The data set's file, by its documented relative path.
pub fn retail_csv() -> PathBuf {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/online-retail/online-retail.csv.gz");
    assert!(
        file.exists(),
        "real data set missing: {} (see ../shared/data/README.md)",
        file.display()
    );
    file
}

/// The asks whose answers must not change: a sample of users, items and baskets from the data.
pub fn asks(store: &Store) -> Vec<Ask> {
    let users = [
        "17850", "13047", "12583", "14688", "15311", "16098", "18074",
    ];
    let items = [
        "85123A", "71053", "84406B", "22752", "21730", "22633", "84879",
    ];
    let mut asks = vec![Ask::new(Scenario::Trending).k(20)];
    for u in users {
        assert!(store.get_user(u).is_some(), "user {u} is in the data");
        asks.push(Ask::new(Scenario::ForUser).user(u).k(20));
    }
    for i in items {
        assert!(store.get_item(i).is_some(), "item {i} is in the data");
        asks.push(Ask::new(Scenario::Together { item: i.into() }).k(20));
        asks.push(Ask::new(Scenario::Viewed { item: i.into() }).k(20));
    }
    asks.push(
        Ask::new(Scenario::Cart {
            items: items[..3].iter().map(|s| s.to_string()).collect(),
        })
        .k(20),
    );
    asks
}

pub fn answers(store: &Store, asks: &[Ask]) -> Vec<String> {
    asks.iter()
        .map(|a| format!("{:?}", store.recommend(a).expect("ask answers")))
        .collect()
}

/// Compare every answer with the twin's, naming the first that differs (not printing all).
pub fn same_answers(store: &Store, twin: &Store, asks: &[Ask], when: &str) {
    let (got, want) = (answers(store, asks), answers(twin, asks));
    for ((ask, g), w) in asks.iter().zip(&got).zip(&want) {
        assert!(
            g == w,
            "{when}: {ask:?} answers\n{g}\nwhere the twin answers\n{w}"
        );
    }
}

pub fn imported(dir: &Path, config: Config) -> Store {
    let store = Store::open_with(dir, config).unwrap();
    retail::import(&store, &retail_csv(), &ImportOptions::default()).unwrap();
    store
}

/// `n` customers spread over the data: every `step`-th user id the store handed out, by the
/// name the data gives them.
pub fn customers(store: &Store, step: usize, n: usize) -> Vec<String> {
    let view = store.view();
    let snap = view.snapshot();
    let users: Vec<String> = (0..snap.user_id_bound())
        .step_by(step)
        .filter_map(|id| snap.user_name(id))
        .take(n)
        .collect();
    assert_eq!(
        users.len(),
        n,
        "the data has {n} customers {step} ids apart"
    );
    users
}
