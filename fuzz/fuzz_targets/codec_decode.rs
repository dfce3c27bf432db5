//! Every value the store reads back from sled, decoded from arbitrary bytes (and a basket
//! chunk that decodes and checks out is indexed and walked).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| recostore::fuzzing::decode_all(data));
