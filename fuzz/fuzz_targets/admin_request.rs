//! One admin request line against a small store. `backup` and `export` are skipped: they
//! write wherever the line says, and a fuzzer would scatter files over the disk.
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
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if matches!(
            v.get("cmd").and_then(|c| c.as_str()),
            Some("backup" | "export")
        ) {
            return;
        }
    }
    recostore::fuzzing::admin_line(store, data);
});
