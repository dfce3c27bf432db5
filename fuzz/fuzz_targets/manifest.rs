//! A published generation's manifest, as a replica reads it from an object store: refused or
//! accepted without a panic; an accepted one names only paths inside a directory and
//! round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| recostore::fuzzing::manifest(data));
