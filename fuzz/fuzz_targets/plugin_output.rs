//! What a plugin hands back, arbitrary: one module, compiled once
//! (`recostore::fuzzing::EchoPlugin`), writes the fuzzer's floats as its scores (NaN,
//! infinities, negative zero, subnormals...) and claims a length chosen by the first byte
//! (right or wrong). The host must take the scores exactly or fault, never panic, and rank
//! what it takes best first with NaN last.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recostore::fuzzing::EchoPlugin;

static PLUGIN: OnceLock<EchoPlugin> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let scores: Vec<f32> = rest
        .chunks_exact(4)
        .take(1024)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let plugin = PLUGIN.get_or_init(|| EchoPlugin::new().expect("the echo module loads"));
    // Mostly the right length; otherwise a wrong one near it, or a wild one.
    let length = match first {
        0..=199 => None,
        200..=249 => Some(
            u32::try_from(scores.len())
                .unwrap_or(u32::MAX)
                .wrapping_add(u32::from(first))
                .wrapping_sub(225),
        ),
        _ => Some(u32::from(first).wrapping_mul(0x0101_0101)),
    };
    plugin.rank(&scores, length);
});
