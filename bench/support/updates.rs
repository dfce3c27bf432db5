//! The catalogue updates the freshness and upkeep benches write: the same writes, so their
//! states are the same states.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recostore::{Item, Store};

/// Write `count` updates over distinct items drawn from `items` (starting at `from`), in
/// calls of 10,000, to each of `stores`: stock and price only, or one tag's weight scaled.
pub fn update(
    stores: &[&Store],
    items: &mut [Item],
    from: usize,
    count: usize,
    retag: bool,
    rng: &mut ChaCha8Rng,
) {
    let n = items.len();
    let mut batch = Vec::with_capacity(10_000);
    for j in 0..count {
        let item = &mut items[(from + j * 7919) % n];
        if retag {
            let i = rng.gen_range(0..item.tags.len());
            item.tags[i].1 = (item.tags[i].1 * rng.gen_range(0.5f32..1.5)).max(1e-3);
        } else {
            item.stock = rng.gen_range(0..100);
            item.price = (item.price * rng.gen_range(0.9f32..1.1)).max(0.0);
        }
        batch.push(item.clone());
        if batch.len() == 10_000 {
            for s in stores {
                s.upsert_items(&batch).expect("update");
            }
            batch.clear();
        }
    }
    for s in stores {
        s.upsert_items(&batch).expect("update");
    }
}
