//! Generated shop traffic shared by the benchmarks: one generator, so the ingestion, scenario
//! and co-occurrence figures describe the same kind of traffic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::{Event, Item};

/// A Zipf-ish index in `0..n` (rank r with probability ∝ 1/(r+1)), cheap and deterministic.
pub fn skewed(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let u: f64 = rng.gen();
    (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
}

/// `count` events by `users` users over `items` items: sessions of 1–8 events, a quarter of
/// sessions ending in a basket purchase.
pub fn events(count: usize, users: usize, items: &[Item], seed: u64) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    let mut ts = 1_700_000_000u64;
    let mut session = 0u64;
    while out.len() < count {
        session += 1;
        let user = format!("user-{}", skewed(&mut rng, users));
        let buy = rng.gen_bool(0.25);
        for _ in 0..rng.gen_range(1..=8) {
            ts += rng.gen_range(1..30);
            let item = &items[skewed(&mut rng, items.len())].id;
            let e = match rng.gen_range(0..10) {
                0 => Event::rating(user.clone(), item.clone(), rng.gen_range(1..=5) as f32, ts),
                1 => Event::cart(user.clone(), item.clone(), ts),
                _ if buy => Event::purchase(user.clone(), item.clone(), 1, 9.5, ts),
                _ => Event::view(user.clone(), item.clone(), ts),
            };
            out.push(e.session(format!("s{session}")));
        }
    }
    out.truncate(count);
    out
}
