//! What a plugin hands back, arbitrary: a module whose `recostore_score` copies the input's
//! bytes into the score area (NaN, infinities, negative zero, subnormals...) and returns a
//! length chosen by the first byte (right or wrong). The host must rank or fault, never
//! panic, and never report a non-finite score as a rank.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recostore::plugin::runner::{self, RunInput};
use recostore::PluginLimits;

static INPUT: OnceLock<RunInput> = OnceLock::new();

fn module(scores: &[u8], length: &str) -> String {
    let data: String = scores.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  (memory (export "memory") 2)
  (data (i32.const 60000) "{data}")
  (func (export "recostore_abi_version") (result i32) (i32.const 1))
  (func (export "recostore_features") (result i64) (i64.const 1))
  (func (export "recostore_input") (param $n i32) (result i32) (i32.const 1024))
  (func (export "recostore_score") (param $n i32) (result i32)
    (memory.copy
      (i32.add (i32.const 1056) (i32.mul (local.get $n) (i32.const 8)))
      (i32.const 60000)
      (i32.mul (local.get $n) (i32.const 4)))
    {length}))"#
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, scores)) = data.split_first() else {
        return;
    };
    let scores = &scores[..scores.len().min(4096)];
    let input = INPUT.get_or_init(|| {
        let text = include_str!("../../plugins/examples/input.json");
        serde_json::from_str(text).expect("the example input parses")
    });
    let length = if first < 200 {
        "(local.get $n)".to_string()
    } else {
        format!("(i32.const {})", i32::from(first) - 200)
    };
    let wasm = module(scores, &length);
    if let Ok(report) = runner::run(wasm.as_bytes(), input, PluginLimits::default(), 1) {
        assert!(report.ranked.iter().all(|r| r.rank >= 1));
    }
});
