//! How many shoppers team-draft interleaving needs to find the better of two strategies,
//! against an A/B split of the same shoppers, in a simulation where the better one is known.
//!
//! Run: `cargo bench --bench interleave` (about 15 minutes on 2 cores).
//!
//! The model, written here and shared with nothing it measures:
//! - each shopper has 40 candidate items whose relevance to them is `u²`, `u` uniform in
//!   [0, 1) (most items matter little, a few a lot);
//! - a strategy ranks the candidates by relevance plus Gaussian noise: noise of its own, the
//!   better strategy having less, and in some rows noise both strategies share (spread
//!   0.25), as when the candidate re-ranks the current strategy's list and keeps most of its
//!   errors;
//! - the shopper sees 10 items and clicks the item at position `j` (from 0) with probability
//!   `scale × activity × relevance / (j + 1)`, each independently (a position-based click
//!   model). Shoppers are alike (activity 1) or unalike (activity exponential with mean 1:
//!   a few click a lot, most hardly at all); the rows' scales are 1 (about two clicks a
//!   list), 0.5 (about one) and 0.1 (about one click in five lists).
//!
//! The A/B split sends half of `n` shoppers to each strategy and compares their mean clicks
//! per shopper with a two-sided Welch z-test. Interleaving shows all `n` shoppers the
//! team-draft merge of both lists ([`recostore::plugin::interleave::team_draft`], the code
//! the store serves with) and applies the store's sign test
//! ([`recostore::plugin::interleave::sign_test`]) to wins and losses. Each method "decides"
//! when p < 0.05 and the better strategy is ahead. For each `n` the bench runs 200 trials with
//! fixed seeds and reports the share of trials decided (the power); the figure quoted is the
//! smallest `n` of the grid with a power of at least 80%.
//!
//! Figures go to `bench/RESULTS.md` by hand.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::plugin::interleave::{sign_test, team_draft};

const CANDIDATES: usize = 40;
const K: usize = 10;
const TRIALS: usize = 200;
const GRID: [usize; 13] = [
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16_384, 32_768, 65_536,
];

/// A standard normal draw (Box–Muller).
fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26 on erf; error below 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// How shoppers click: `scale` times relevance over position, times the shopper's own
/// activity, which is 1 for everyone (`alike`) or exponential with mean 1 (some shoppers
/// click a lot, many hardly at all, as in any shop).
#[derive(Clone, Copy)]
struct Model {
    scale: f64,
    alike: bool,
    /// Noise both strategies share (each candidate's draw is the same for both): a
    /// re-ranker built on the current strategy inherits most of its errors.
    shared: f64,
}

/// One shopper's candidates' relevance, each already times the shopper's click scale.
fn shopper(m: Model, rng: &mut ChaCha8Rng) -> (Vec<f64>, f64) {
    let rel = (0..CANDIDATES)
        .map(|_| {
            let u: f64 = rng.gen();
            u * u
        })
        .collect();
    let activity = if m.alike {
        1.0
    } else {
        -rng.gen_range(f64::MIN_POSITIVE..1.0f64).ln()
    };
    (rel, m.scale * activity)
}

/// The noise both strategies share for one shopper's candidates.
fn common(m: Model, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..CANDIDATES).map(|_| m.shared * gauss(rng)).collect()
}

/// The top `K` candidate indices of a strategy with noise `spread` of its own on top of
/// `common`, the noise it shares.
fn rank(rel: &[f64], common: &[f64], spread: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = rel
        .iter()
        .zip(common)
        .enumerate()
        .map(|(i, (r, c))| (r + c + spread * gauss(rng), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(K).map(|(_, i)| i).collect()
}

/// Which positions of `list` a shopper with click scale `c` clicks.
fn clicks(rel: &[f64], c: f64, list: &[usize], rng: &mut ChaCha8Rng) -> Vec<bool> {
    list.iter()
        .enumerate()
        .map(|(j, &i)| rng.gen::<f64>() < (c * rel[i] / (j + 1) as f64).min(1.0))
        .collect()
}

/// Whether an A/B split of `n` shoppers finds `better` (spread `b`) ahead of spread `a`.
fn ab_decides(m: Model, n: usize, a: f64, b: f64, rng: &mut ChaCha8Rng) -> bool {
    let mut arms = [Vec::new(), Vec::new()];
    for s in 0..n {
        let (rel, scale) = shopper(m, rng);
        let shared = common(m, rng);
        let arm = s % 2;
        let list = rank(&rel, &shared, if arm == 0 { a } else { b }, rng);
        let c = clicks(&rel, scale, &list, rng)
            .iter()
            .filter(|&&c| c)
            .count();
        arms[arm].push(c as f64);
    }
    let stat = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0).max(1.0);
        (m, var / v.len() as f64)
    };
    let ((ma, va), (mb, vb)) = (stat(&arms[0]), stat(&arms[1]));
    if va + vb == 0.0 {
        return false;
    }
    let z = (mb - ma) / (va + vb).sqrt();
    let p = 2.0 * (1.0 - phi(z.abs()));
    p < 0.05 && mb > ma
}

/// Whether interleaving `n` shoppers finds spread `b` ahead of spread `a`.
fn interleaving_decides(m: Model, n: usize, a: f64, b: f64, rng: &mut ChaCha8Rng) -> bool {
    let (mut wins_b, mut wins_a) = (0u64, 0u64);
    for _ in 0..n {
        let (rel, scale) = shopper(m, rng);
        let shared = common(m, rng);
        let (la, lb) = (rank(&rel, &shared, a, rng), rank(&rel, &shared, b, rng));
        let merged = team_draft(&la, &lb, K, || rng.gen::<bool>());
        let list: Vec<usize> = merged.iter().map(|m| m.0).collect();
        let mut credit = [0u32; 2];
        for (clicked, (_, team)) in clicks(&rel, scale, &list, rng).into_iter().zip(&merged) {
            if clicked {
                credit[usize::from(*team)] += 1;
            }
        }
        match credit[0].cmp(&credit[1]) {
            std::cmp::Ordering::Greater => wins_a += 1,
            std::cmp::Ordering::Less => wins_b += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    sign_test(wins_b, wins_a) < 0.05 && wins_b > wins_a
}

/// Expected clicks per shopper of a strategy with noise `spread` (Monte Carlo, 200,000).
fn true_clicks(m: Model, spread: f64, rng: &mut ChaCha8Rng) -> f64 {
    let n = 200_000;
    let mut sum = 0.0;
    for _ in 0..n {
        let (rel, scale) = shopper(m, rng);
        let shared = common(m, rng);
        let list = rank(&rel, &shared, spread, rng);
        sum += list
            .iter()
            .enumerate()
            .map(|(j, &i)| (scale * rel[i] / (j + 1) as f64).min(1.0))
            .sum::<f64>();
    }
    sum / n as f64
}

fn main() {
    println!("| shop | own noise of each strategy, worse → better | clicks per shopper, worse / better | A/B: shoppers for 80% power | interleaving: shoppers for 80% power | A/B ÷ interleaving |");
    println!("|---|---|---|---|---|---|");
    // (label, model, worse spread, better spread)
    let models = [
        (
            "independent rankers; shoppers alike; dense clicks",
            Model {
                scale: 1.0,
                alike: true,
                shared: 0.0,
            },
            0.30,
            0.20,
        ),
        (
            "independent rankers; shoppers unalike; sparse clicks",
            Model {
                scale: 0.1,
                alike: false,
                shared: 0.0,
            },
            0.30,
            0.20,
        ),
        (
            "a re-ranker of the current ranking; shoppers unalike; about one click a list",
            Model {
                scale: 0.5,
                alike: false,
                shared: 0.25,
            },
            0.15,
            0.05,
        ),
        (
            "a re-ranker of the current ranking; shoppers unalike; sparse clicks",
            Model {
                scale: 0.1,
                alike: false,
                shared: 0.25,
            },
            0.15,
            0.05,
        ),
    ];
    for (label, m, a, b) in models {
        {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let (ca, cb) = (true_clicks(m, a, &mut rng), true_clicks(m, b, &mut rng));
            let needed = |decides: fn(Model, usize, f64, f64, &mut ChaCha8Rng) -> bool| {
                for (g, &n) in GRID.iter().enumerate() {
                    let mut rng = ChaCha8Rng::seed_from_u64(1_000 + g as u64);
                    let hits = (0..TRIALS)
                        .filter(|_| decides(m, n, a, b, &mut rng))
                        .count();
                    let power = hits as f64 / TRIALS as f64;
                    eprintln!("  {label}, spread {a} vs {b}, n = {n}: power {power:.2}");
                    if power >= 0.8 {
                        return Some(n);
                    }
                }
                None
            };
            let (inter, ab) = (needed(interleaving_decides), needed(ab_decides));
            let last = GRID[GRID.len() - 1];
            let show = |n: Option<usize>| n.map_or(format!("> {last}"), |n| n.to_string());
            let ratio = match (ab, inter) {
                (Some(x), Some(y)) => format!("{:.0}×", x as f64 / y as f64),
                (None, Some(y)) => format!("> {:.0}×", last as f64 / y as f64),
                _ => "-".to_string(),
            };
            println!(
                "| {label} | {a} → {b} | {ca:.4} / {cb:.4} (+{:.1}%) | {} | {} | {ratio} |",
                (cb / ca - 1.0) * 100.0,
                show(ab),
                show(inter)
            );
        }
    }
}
