//! One JSONL line checked as an item, a user and an event line.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recostore::Store;

static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("scratch directory");
        let store = recostore::fuzzing::small_store(dir.path()).expect("small store");
        (dir, store)
    });
    recostore::fuzzing::jsonl_line(store, data);
});
