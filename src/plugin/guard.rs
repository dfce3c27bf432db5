//! Guardrails: a version promoted with [`crate::plugin::Plugins::promote`] is watched against
//! the version before it for a window, and rolled back on its own when it does worse beyond
//! the configured bounds.
//!
//! Three things are judged, each only once it has enough to go on:
//! - **fault rate**, from `min_calls` calls of the new version: rolled back when it exceeds
//!   the previous version's rate (measured up to the promotion) by more than
//!   `max_fault_rate_increase`;
//! - **latency p99**, from `min_calls` calls of each: rolled back when the new p99 is more
//!   than `max_p99_ratio` times the previous one;
//! - **CTR and conversion** in the A/B slots that route to the plugin, from `min_impressions`
//!   impressions of each version: rolled back when a one-sided two-proportion z-test says the
//!   new rate is lower.
//!
//! **How often the rate tests look, and at what level.** They are judged once per band of the
//! new version's impressions: the first check with at least `min_impressions`, then once each
//! time the count doubles (band `j` covers `min_impressions · 2^j` up to twice that). Band `j`
//! tests each of the two metrics at `alpha / 2^(j+2)`, so over every band and both metrics
//! the chance of rolling back a version no worse than the old one stays below `alpha` (a
//! union bound: Σ 2 · alpha / 2^(j+2) = alpha), whatever the traffic. The bands looked at are
//! kept in memory: after a restart a band may be looked at once more, so across restarts the
//! bound is alpha per process life, not alpha in all.
//!
//! **What the rate tests assume.** Impressions are the trials, as the A/B figures count them,
//! so the k items of one answer count as k trials. The old version's rates are over its whole
//! life, the new one's over the watch: a before-and-after comparison, open to changes in the
//! traffic between the two. Clicks arrive after the answer they follow, so a new version's
//! latest impressions have had less time to be clicked; set `min_impressions` well above the
//! traffic of the time a click takes to arrive. The p in a rollback's reason is the nominal
//! p of that one look.
//!
//! A watched version that faults `faults_in_a_row` times running is rolled back too, where an
//! unwatched one would be disabled. The watch, its baseline and every rollback are stored with
//! the plugin's record, in one batch, so a restart carries them on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// The bounds a promoted version must stay within against the version before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guardrails {
    /// How long the new version is watched, in seconds from the promotion. After it the
    /// promotion stands.
    pub window_secs: u64,
    /// Calls of the new version (and, for latency, of the previous one) before fault rate
    /// and latency are judged.
    pub min_calls: u64,
    /// The most the fault rate may rise, in absolute terms: 0.01 is one more fault per 100
    /// calls.
    pub max_fault_rate_increase: f64,
    /// The most the p99 call latency may grow, as a multiple of the previous version's.
    pub max_p99_ratio: f64,
    /// Impressions each version needs in the slots before CTR and conversion are judged.
    pub min_impressions: u64,
    /// The significance level of the one-sided CTR and conversion tests.
    pub alpha: f64,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            window_secs: 24 * 3600,
            min_calls: 500,
            max_fault_rate_increase: 0.01,
            max_p99_ratio: 1.5,
            min_impressions: 5_000,
            alpha: 0.01,
        }
    }
}

impl Guardrails {
    /// `Err` (the reason) when a bound cannot mean anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.window_secs == 0 {
            return Err("window_secs must be above 0".into());
        }
        if self.min_calls == 0 || self.min_impressions == 0 {
            return Err("min_calls and min_impressions must be above 0".into());
        }
        if !(self.max_fault_rate_increase >= 0.0 && self.max_fault_rate_increase <= 1.0) {
            return Err(format!(
                "max_fault_rate_increase {} must be between 0 and 1",
                self.max_fault_rate_increase
            ));
        }
        if !(self.max_p99_ratio >= 1.0 && self.max_p99_ratio.is_finite()) {
            return Err(format!(
                "max_p99_ratio {} must be 1 or more",
                self.max_p99_ratio
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(format!("alpha {} must be between 0 and 0.5", self.alpha));
        }
        Ok(())
    }
}

/// What the previous version had done when the new one was promoted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Calls of the previous version.
    pub calls: u64,
    /// Its faults.
    pub faults: u64,
    /// Its p99 call latency, in microseconds (0 without calls).
    pub p99_us: f64,
}

/// A promotion under watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// The promoted version.
    pub version: u32,
    /// The version it replaced, which a rollback restores.
    pub previous: u32,
    /// Why the replaced version was disabled, if it was: a rollback restores that too.
    pub previous_disabled: Option<String>,
    /// When it was promoted (Unix seconds).
    pub promoted_at: u64,
    /// The bounds.
    pub guardrails: Guardrails,
    /// The previous version's figures at the promotion.
    pub baseline: Baseline,
}

impl Watch {
    /// When the watch ends and the promotion stands (Unix seconds).
    pub fn until(&self) -> u64 {
        self.promoted_at.saturating_add(self.guardrails.window_secs)
    }
}

/// A rollback the guardrails made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// The version rolled back.
    pub from_version: u32,
    /// The version restored.
    pub to_version: u32,
    /// Which bound it crossed, with the figures.
    pub reason: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// What the guardrails keep per plugin (stored under its own key, FORMAT.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub watch: Option<Watch>,
    pub rollbacks: Vec<Rollback>,
}

/// The most rollbacks remembered per plugin; older ones are dropped first.
pub(crate) const MAX_ROLLBACKS: usize = 100;

/// The new version's figures now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Now {
    pub calls: u64,
    pub faults: u64,
    pub p99_us: f64,
}

/// Impressions and successes (clicks or purchases) of the previous and the new version.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rates {
    pub old_impressions: u64,
    pub old: u64,
    pub new_impressions: u64,
    pub new: u64,
}

/// The level for the rate tests, and the band's bit, if this check opens a band of
/// impressions not looked at yet (see the module docs), marking it in `looks`; `None`: no rate
/// test now.
pub(crate) fn look(g: &Guardrails, r: &Rates, looks: &AtomicU64) -> Option<(f64, u64)> {
    if r.old_impressions < g.min_impressions || r.new_impressions < g.min_impressions {
        return None;
    }
    let band = (r.new_impressions / g.min_impressions).ilog2().min(62);
    let bit = 1u64 << band;
    if looks.fetch_or(bit, Relaxed) & bit != 0 {
        return None;
    }
    // band ≤ 62, so the power of two is exact.
    Some((g.alpha / 2f64.powi(band as i32 + 2), bit))
}

/// Which bound the new version crossed, if any, as the reason a rollback records. The rate
/// tests run only with a level (`rate_alpha`, from [`look`]).
pub(crate) fn verdict(
    g: &Guardrails,
    base: &Baseline,
    now: &Now,
    ctr: &Rates,
    conversion: &Rates,
    rate_alpha: Option<f64>,
) -> Option<String> {
    let rate = |f: u64, c: u64| if c == 0 { 0.0 } else { f as f64 / c as f64 };
    if now.calls >= g.min_calls {
        let (old, new) = (rate(base.faults, base.calls), rate(now.faults, now.calls));
        if new - old > g.max_fault_rate_increase {
            return Some(format!(
                "fault rate {new:.4} over {} calls against {old:.4} before (bound: +{})",
                now.calls, g.max_fault_rate_increase
            ));
        }
        if base.calls >= g.min_calls
            && base.p99_us > 0.0
            && now.p99_us > base.p99_us * g.max_p99_ratio
        {
            return Some(format!(
                "p99 call latency {:.0} µs against {:.0} µs before (bound: ×{})",
                now.p99_us, base.p99_us, g.max_p99_ratio
            ));
        }
    }
    let alpha = rate_alpha?;
    for (what, r) in [("CTR", ctr), ("conversion", conversion)] {
        if r.old_impressions < g.min_impressions || r.new_impressions < g.min_impressions {
            continue;
        }
        let p = lower_p_value(r);
        if p < alpha {
            return Some(format!(
                "{what} {:.4} over {} impressions against {:.4} over {} before (one-sided p = {p:.2e} at this look, bound: {alpha:.2e})",
                rate(r.new, r.new_impressions),
                r.new_impressions,
                rate(r.old, r.old_impressions),
                r.old_impressions,
            ));
        }
    }
    None
}

/// One-sided p-value that the new rate is this much lower (or more) when both are equal: the
/// pooled two-proportion z-test.
pub(crate) fn lower_p_value(r: &Rates) -> f64 {
    // A click counts in every slot that showed the item, and a shopper may click twice: a
    // rate is capped at 1, so the variance below stays a variance.
    let (new, old) = (r.new.min(r.new_impressions), r.old.min(r.old_impressions));
    let (n1, n0) = (r.new_impressions as f64, r.old_impressions as f64);
    if n1 == 0.0 || n0 == 0.0 {
        return 1.0;
    }
    let (p1, p0) = (new as f64 / n1, old as f64 / n0);
    let pooled = (new + old) as f64 / (n1 + n0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)).sqrt();
    if se == 0.0 {
        // Both rates 0 or both 1: no evidence either way.
        return 1.0;
    }
    normal_cdf((p1 - p0) / se)
}

/// Φ(z), the standard normal distribution function, by the complementary error function of
/// Numerical Recipes (`erfcc`, fractional error below 1.2e-7 everywhere).
pub(crate) fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_cdf_matches_known_values() {
        for (z, want) in [
            (0.0, 0.5),
            (-1.0, 0.158_655_253_9),
            (1.0, 0.841_344_746_1),
            (-2.326_347_874, 0.01),
            (-3.0, 0.001_349_898_0),
            (5.0, 0.999_999_713_3),
        ] {
            let got = normal_cdf(z);
            assert!(
                (got - want).abs() < 2e-7 * want.max(1e-3) * 10.0,
                "Φ({z}) = {got}, not {want}"
            );
        }
    }

    /// The z-test against a direct computation in the test: 10% against 8% over 5,000
    /// impressions each is z = -3.5, p ≈ 2.3e-4.
    #[test]
    fn the_ctr_test_and_the_bounds() {
        let g = Guardrails {
            min_impressions: 1_000,
            min_calls: 100,
            ..Guardrails::default()
        };
        let worse = Rates {
            old_impressions: 5_000,
            old: 500,
            new_impressions: 5_000,
            new: 400,
        };
        let p = lower_p_value(&worse);
        let pooled: f64 = 900.0 / 10_000.0;
        let z = (0.08 - 0.10) / (pooled * (1.0 - pooled) * (2.0 / 5_000.0)).sqrt();
        assert!((z + 3.4943).abs() < 1e-3, "{z}");
        assert!((p - 2.377e-4).abs() < 1e-6, "{p}");
        let base = Baseline {
            calls: 1_000,
            faults: 0,
            p99_us: 100.0,
        };
        let fine = Now {
            calls: 1_000,
            faults: 5,
            p99_us: 140.0,
        };
        let none = Rates::default();
        assert_eq!(verdict(&g, &base, &fine, &none, &none, Some(g.alpha)), None);
        let why = verdict(&g, &base, &fine, &worse, &none, Some(g.alpha)).expect("CTR");
        assert!(why.starts_with("CTR 0.0800 over 5000"), "{why}");
        // No level, no rate test.
        assert_eq!(verdict(&g, &base, &fine, &worse, &none, None), None);
        // More clicks than impressions (a click counted in two slots) is capped, not NaN.
        let over = Rates {
            old: 9_000,
            ..worse
        };
        assert!(lower_p_value(&over).is_finite());
        // Better is never a reason.
        let better = Rates { new: 600, ..worse };
        assert_eq!(
            verdict(&g, &base, &fine, &better, &none, Some(g.alpha)),
            None
        );
        // Too few impressions: not judged yet.
        let few = Rates {
            old_impressions: 999,
            ..worse
        };
        assert_eq!(verdict(&g, &base, &fine, &few, &none, Some(g.alpha)), None);
        let faulty = Now { faults: 20, ..fine };
        assert!(verdict(&g, &base, &faulty, &none, &none, None)
            .expect("faults")
            .starts_with("fault rate 0.0200"));
        let slow = Now {
            p99_us: 151.0,
            ..fine
        };
        assert!(verdict(&g, &base, &slow, &none, &none, None)
            .expect("latency")
            .starts_with("p99"));
        // Latency needs a baseline of min_calls calls.
        let thin = Baseline { calls: 99, ..base };
        assert_eq!(verdict(&g, &thin, &slow, &none, &none, None), None);
        // And fault rate needs min_calls calls of the new version.
        let early = Now {
            calls: 99,
            ..faulty
        };
        assert_eq!(verdict(&g, &base, &early, &none, &none, None), None);
    }

    /// Bands: one look at 1,000 impressions, none again until 2,000, then one; levels halve,
    /// and all of them together stay within alpha.
    #[test]
    fn the_rate_tests_look_once_per_doubling_within_alpha_in_all() {
        let g = Guardrails {
            min_impressions: 1_000,
            alpha: 0.01,
            ..Guardrails::default()
        };
        let looks = AtomicU64::new(0);
        let at = |n: u64| Rates {
            old_impressions: 5_000,
            old: 500,
            new_impressions: n,
            new: 0,
        };
        assert_eq!(look(&g, &at(999), &looks), None);
        assert_eq!(look(&g, &at(1_000), &looks), Some((0.0025, 1)));
        assert_eq!(look(&g, &at(1_999), &looks), None);
        assert_eq!(look(&g, &at(2_000), &looks), Some((0.00125, 2)));
        assert_eq!(look(&g, &at(3_000), &looks), None);
        let total: f64 = (0..63).map(|b| 2.0 * g.alpha / 2f64.powi(b + 2)).sum();
        assert!(total <= g.alpha, "{total}");
        assert_eq!(
            look(&g, &at(u64::MAX), &looks).map(|(a, _)| a > 0.0),
            Some(true)
        );
    }

    #[test]
    fn meaningless_bounds_are_refused() {
        for bad in [
            Guardrails {
                window_secs: 0,
                ..Guardrails::default()
            },
            Guardrails {
                min_calls: 0,
                ..Guardrails::default()
            },
            Guardrails {
                max_fault_rate_increase: f64::NAN,
                ..Guardrails::default()
            },
            Guardrails {
                max_fault_rate_increase: -0.1,
                ..Guardrails::default()
            },
            Guardrails {
                max_p99_ratio: 0.5,
                ..Guardrails::default()
            },
            Guardrails {
                max_p99_ratio: f64::INFINITY,
                ..Guardrails::default()
            },
            Guardrails {
                alpha: 0.0,
                ..Guardrails::default()
            },
            Guardrails {
                alpha: 0.7,
                ..Guardrails::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(Guardrails::default().check().is_ok());
    }
}
