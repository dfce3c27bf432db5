//! What the plugin tests share: a small shop with activity, hostile plugins written in WAT,
//! and the example strategies built from plugins/ with cargo.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use recostore::{Config, Event, Item, PluginLimits, Store, User};

/// Limits for tests whose subject is not the deadline: a 2-core machine running the test
/// suite can deschedule a query for longer than the default 10 ms, and a wall-clock deadline
/// would then (correctly) fall back, which those tests would misread.
pub fn relaxed() -> PluginLimits {
    PluginLimits::default().deadline(std::time::Duration::from_secs(2))
}

/// A shop of 30 items with distinct popularity (item `i` bought `i + 1` times), so trending
/// returns all 30 in a known order.
pub fn shop(limits: PluginLimits) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path(), Config::default().plugins(limits)).expect("open");
    let items: Vec<Item> = (0..30)
        .map(|i| {
            Item::new(format!("i{i:02}"), [(format!("colour:c{}", i % 3), 1.0)])
                .category(format!("cat{}", i % 4))
                .price(5.0 + i as f32 * 3.0)
                .stock(10)
        })
        .collect();
    store.upsert_items(&items).expect("items");
    store
        .upsert_users(&[User::new("buyer", [("colour:c0", 1.0)])])
        .expect("users");
    let mut events = Vec::new();
    for i in 0..30u64 {
        for n in 0..=i {
            events.push(Event::purchase(
                "buyer",
                format!("i{i:02}"),
                1,
                5.0,
                1_000 + n,
            ));
        }
    }
    store.record_events(&events).expect("events");
    (dir, store)
}

/// 60 mugs in three colours (item `iNN` has colour `c(NN % 3)`, price 10 + NN, stock 50) and
/// `users` shoppers (`uN` likes colour `c(N % 3)`): the shop of the guardrail and workflow
/// tests, whose click model is "the first item of my colour in the top three".
pub fn colour_shop(store: &Store, users: usize) {
    let items: Vec<Item> = (0..60)
        .map(|i| {
            Item::new(format!("i{i:02}"), [(format!("colour:c{}", i % 3), 1.0)])
                .category("mugs")
                .price(10.0 + i as f32)
                .stock(50)
        })
        .collect();
    store.upsert_items(&items).expect("items");
    let users: Vec<User> = (0..users)
        .map(|u| User::new(format!("u{u}"), [(format!("colour:c{}", u % 3), 1.0)]))
        .collect();
    store.upsert_users(&users).expect("users");
}

/// Send `cmd` and return its result, failing the test on an error.
#[cfg(feature = "admin")]
pub fn call(
    c: &mut recostore::admin::AdminClient,
    cmd: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let r = c.call(cmd, args.clone()).expect("response");
    assert!(r.ok, "{cmd} {args}: {:?}", r.error);
    r.result.expect("result")
}

/// Write `w` as `dir/name` and return the path, for `plugin.load`'s `path`.
pub fn wat_file(dir: &std::path::Path, name: &str, w: Wat<'_>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, w.text()).expect("write module");
    path.to_str().expect("utf-8").to_string()
}

/// A module that passes the load checks and the smoke run (which uses 16 candidates and
/// scenario code 5), scores `sign × similarity`, and does `hostile` in `recostore_score`
/// whenever the scenario is not 5. `input` is the body of `recostore_input`; `extra` adds
/// functions; `imports` adds imports; `score_name` renames the score export.
pub struct Wat<'a> {
    pub sign: f32,
    pub hostile: &'a str,
    pub input: &'a str,
    pub extra: &'a str,
    pub imports: &'a str,
    pub score_name: &'a str,
}

impl Default for Wat<'_> {
    fn default() -> Self {
        Wat {
            sign: 1.0,
            hostile: "",
            input: "(i32.const 1024)",
            extra: "",
            imports: "",
            score_name: "recostore_score",
        }
    }
}

impl Wat<'_> {
    /// The module text.
    pub fn text(&self) -> String {
        format!(
            r#"(module
  (import "env" "log" (func $log (param i32 i32 i32)))
  {imports}
  (memory (export "memory") 2)
  (data (i32.const 0) "hello from a plugin")
  (func (export "recostore_abi_version") (result i32) (i32.const 1))
  (func (export "recostore_features") (result i64) (i64.const 1))
  (func (export "recostore_input") (param $n i32) (result i32) {input})
  (func (export "{score_name}") (param $n i32) (result i32)
    (local $i i32)
    (if (i32.ne (i32.load (i32.const 1036)) (i32.const 5)) (then {hostile}))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (f32.store
        (i32.add (i32.const 1056)
          (i32.mul (i32.add (i32.mul (local.get $n) (i32.const 2)) (local.get $i)) (i32.const 4)))
        (f32.mul (f32.const {sign})
          (f32.load (i32.add (i32.const 1056)
            (i32.mul (i32.add (local.get $n) (local.get $i)) (i32.const 4))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))
  {extra})"#,
            imports = self.imports,
            input = self.input,
            score_name = self.score_name,
            hostile = self.hostile,
            sign = self.sign,
            extra = self.extra,
        )
    }
}

/// The example strategies, built once per test binary with the documented command. Returns
/// the directory holding `a9_match.wasm`, `members_gift.wasm` and `spend_match.wasm`.
pub fn examples() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--release",
                    "--quiet",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--manifest-path",
                ])
                .arg(root.join("plugins/Cargo.toml"))
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("run cargo to build plugins/");
            assert!(
                status.success(),
                "building plugins/ failed: is the target installed? \
                 (rustup target add wasm32-unknown-unknown)"
            );
            root.join("plugins/target/wasm32-unknown-unknown/release")
        })
        .clone()
}
