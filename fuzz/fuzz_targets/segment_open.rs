//! Arbitrary bytes as a segment file: open it under both verification levels and, when it
//! validates, read records and run queries against it.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("scratch directory"));
    recostore::fuzzing::segment_queries(dir.path(), data);
});
