//! A published pair file, as a replica reads it before importing it: refused or accepted
//! without a panic; an accepted one has ascending keys and encodes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| recostore::fuzzing::pairs(data));
