//! Team-draft interleaving (Radlinski, Kurup and Joachims 2008; Chapelle, Joachims, Radlinski
//! and Yue 2012): two strategies share one list, and the strategy whose items the shopper
//! takes more of wins that answer.
//!
//! Each round the team with fewer picks so far (a coin decides a tie) puts its best item not
//! yet in the list into it; the item is that team's. A click or a purchase of an item is
//! credited to its team, once per item and answer, so a shopper who clicks an item twice, or
//! clicks and buys it, counts once. An answer whose shopper took more of team A's items is a
//! win for A, the reverse a win for B, and an answer with equal non-zero credits a tie;
//! answers nobody acted on count as neither. Because both strategies are judged on the same
//! shoppers, in the same moment, at the same positions (each team gets the top slot half the
//! time), the comparison needs far fewer shoppers than an A/B split of them: `bench/interleave.rs`
//! measures how many fewer.
//!
//! The decision rule is the two-sided sign test on wins against losses ([`sign_test`]). It
//! is exact for independent answers, and valid for one look: a p-value read again and again as
//! the answers come in crosses 0.05 by chance more often than 5% of the time, so fix the
//! number of answers (or a stopping rule) before starting. Answers to one shopper are not
//! independent: where a few heavy shoppers make most of the answers, the p-value is too small,
//! and the wins and losses of those shoppers deserve a look of their own.

/// Which strategy of an interleaved pair contributed an item.
pub type Team = u8;

/// Merge `a` and `b` (each best first) into at most `k` distinct items by team-draft
/// interleaving. `coin` supplies the tie-breaking bits (one per round in which the teams
/// have picked equally often). Returns each item with its team, 0 for `a` and 1 for `b`.
pub fn team_draft<T: Eq + std::hash::Hash + Clone>(
    a: &[T],
    b: &[T],
    k: usize,
    mut coin: impl FnMut() -> bool,
) -> Vec<(T, Team)> {
    let mut out: Vec<(T, Team)> = Vec::with_capacity(k.min(a.len() + b.len()));
    // What the list holds, so that a long answer costs O(k), not O(k²).
    let mut taken: std::collections::HashSet<&T> = std::collections::HashSet::new();
    let (mut picks, mut next) = ([0usize; 2], [0usize; 2]);
    let lists = [a, b];
    while out.len() < k {
        // The next item each team could add: its best one not in the list yet.
        for t in 0..2 {
            while next[t] < lists[t].len() && taken.contains(&lists[t][next[t]]) {
                next[t] += 1;
            }
        }
        let left = [next[0] < a.len(), next[1] < b.len()];
        let team: Team = match left {
            [false, false] => break,
            [true, false] => 0,
            [false, true] => 1,
            [true, true] => match picks[0].cmp(&picks[1]) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Equal => u8::from(!coin()),
            },
        };
        let t = usize::from(team);
        taken.insert(&lists[t][next[t]]);
        out.push((lists[t][next[t]].clone(), team));
        picks[t] += 1;
        next[t] += 1;
    }
    out
}

/// What one answer came to, from the credits of its two teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nobody took anything.
    Nothing,
    /// Team A (the first interleaved variant) got more.
    AWins,
    /// Team B got more.
    BWins,
    /// Equal, and more than nothing.
    Tie,
}

impl Outcome {
    /// The outcome of credits `a` and `b`.
    pub(crate) fn of(a: u32, b: u32) -> Outcome {
        match a.cmp(&b) {
            std::cmp::Ordering::Greater => Outcome::AWins,
            std::cmp::Ordering::Less => Outcome::BWins,
            std::cmp::Ordering::Equal if a == 0 => Outcome::Nothing,
            std::cmp::Ordering::Equal => Outcome::Tie,
        }
    }
}

/// The exact two-sided sign test: the probability, if both strategies were equally good, of
/// a split of `wins + losses` decided answers at least as uneven as this one. Ties carry no
/// information about which is better and are left out, as the sign test does. 1 when nothing
/// was decided.
pub fn sign_test(wins: u64, losses: u64) -> f64 {
    let n = wins + losses;
    if n == 0 {
        return 1.0;
    }
    let low = wins.min(losses);
    // P(X <= low) for X ~ Binomial(n, 1/2), summed in log space (2^-n underflows an f64 past
    // n = 1074) from i = low down: below the mean the terms C(n, i) 2^-n shrink by a factor
    // i / (n - i + 1) each step, so the sum stops once they no longer move it: about 10^5
    // terms at a billion answers, a few at a thousand.
    let ln_choose = |i: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(i as f64 + 1.0) - ln_gamma((n - i) as f64 + 1.0)
    };
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_term = ln_choose(low) - ln2n;
    let mut ln_tail = ln_term;
    let mut i = low;
    while i > 0 {
        // C(n, i-1) = C(n, i) · i / (n - i + 1).
        ln_term += (i as f64).ln() - ((n - i + 1) as f64).ln();
        i -= 1;
        if ln_term < ln_tail - 40.0 {
            break; // below e^-40 of the sum: no longer moves an f64
        }
        let (hi, lo) = if ln_term > ln_tail {
            (ln_term, ln_tail)
        } else {
            (ln_tail, ln_term)
        };
        ln_tail = hi + (lo - hi).exp().ln_1p();
    }
    let tail = ln_tail.exp();
    (2.0 * tail).min(1.0)
}

/// ln Γ(x) for x ≥ 1, by Lanczos (g = 7, nine coefficients): relative error near 1e-15,
/// enough for a p-value that is read to two digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_draft_alternates_and_never_repeats_an_item() {
        let a = ["x", "y", "z", "w"];
        let b = ["y", "v", "x", "u"];
        // A wins the first coin: A takes x; B (fewer picks) takes y; equal again, coin for B:
        // B takes v; A takes z.
        let mut coins = [true, false].into_iter();
        let got = team_draft(&a, &b, 4, || coins.next().unwrap_or(true));
        assert_eq!(got, vec![("x", 0), ("y", 1), ("v", 1), ("z", 0)]);
        // A short list leaves the rest to the other team, and the list stops at the union.
        let got = team_draft(&["x"], &["x", "y", "z"], 10, || true);
        assert_eq!(got, vec![("x", 0), ("y", 1), ("z", 1)]);
        assert!(team_draft::<u32>(&[], &[], 5, || true).is_empty());
        assert!(team_draft(&[1], &[2], 0, || true).is_empty());
    }

    #[test]
    fn each_team_gets_the_top_slot_half_the_time() {
        let mut r = crate::splitmix::SplitMix64(7);
        let firsts = (0..10_000)
            .filter(|_| team_draft(&[1, 2], &[3, 4], 2, || r.next_u64() & 1 == 1)[0].1 == 0)
            .count();
        assert!((4800..5200).contains(&firsts), "{firsts}");
    }

    /// The sign test against a direct sum of binomial terms in f64 (no logs), for n small
    /// enough that 2^-n is exact.
    #[test]
    fn sign_test_matches_the_binomial_sum() {
        fn direct(w: u64, l: u64) -> f64 {
            let n = w + l;
            let mut c = 1.0f64;
            let mut sum = 0.0;
            for i in 0..=w.min(l) {
                if i > 0 {
                    c = c * (n - i + 1) as f64 / i as f64;
                }
                sum += c;
            }
            (2.0 * sum / 2f64.powi(n as i32)).min(1.0)
        }
        for (w, l) in [
            (0, 0),
            (1, 0),
            (5, 5),
            (9, 1),
            (30, 10),
            (100, 60),
            (0, 40),
            (500, 450),
        ] {
            let (got, want) = (sign_test(w, l), direct(w, l));
            assert!(
                (got - want).abs() <= 1e-10 * want.max(1e-300),
                "{w}/{l}: {got} vs {want}"
            );
        }
        assert_eq!(sign_test(0, 0), 1.0);
        // 10 wins, 0 losses: 2 / 1024.
        assert!((sign_test(10, 0) - 2.0 / 1024.0).abs() < 1e-15);
        // Far past 2^-1074 the answer is still a number, not NaN.
        let p = sign_test(3000, 1000);
        assert!((0.0..1e-100).contains(&p), "{p}");
        assert!((sign_test(5000, 5000) - 1.0).abs() < 1e-12);
        // A billion answers take about 10^5 terms, not half a billion: 49.99%
        // against 50.01% is z = 6.3, p about 3e-10.
        let p = sign_test(499_900_000, 500_100_000);
        assert!(p > 1e-11 && p < 1e-9, "{p}");
    }

    #[test]
    fn outcomes() {
        assert_eq!(Outcome::of(0, 0), Outcome::Nothing);
        assert_eq!(Outcome::of(2, 1), Outcome::AWins);
        assert_eq!(Outcome::of(0, 1), Outcome::BWins);
        assert_eq!(Outcome::of(3, 3), Outcome::Tie);
    }
}
