//! The pruned engine's inner loops over one window of item ids: scattering postings into the
//! accumulator, adding dense columns, testing swept slots against θ, and seeking in a list.
//! They are apart from [`super::pruned`] because they are where the time goes: each is a
//! tight loop over plain slices, and the two whole-window passes are compiled for AVX2 and
//! AVX-512 as well and picked at run time (`multiversion`).

use super::pruned::WINDOW;

/// The sweep keeps a slot whose sum `a` satisfies `a >= cut · m` and `a + ne_raw >= whole · m`
/// (`m` its norm, or 1). The exact tests in `Search::candidate` are
/// `prunable(a / m + ne_sum, θ)`, that is `a / m < θ / (1 + SLACK) - ne_sum`, and
/// `prunable((a + ne_raw) / m, θ)`. Both cuts sit a little below those, so a float rounding in
/// the rearranged form can only let an extra slot through, never drop one.
#[inline]
pub(super) fn sweep_cuts(theta: f32, ne_sum: f32) -> (f32, f32) {
    let whole = theta / (1.0 + super::topk::SLACK);
    let cut = whole - ne_sum - 1e-6 * theta;
    let cut = if cut > 0.0 { cut * (1.0 - 1e-6) } else { 0.0 };
    (cut, whole * (1.0 - 1e-5))
}

/// Add `contribution(weight)` of each posting with an item id below `hi` into the accumulator
/// of the window starting at `lo`; returns how many postings were read. Slots are taken modulo
/// [`WINDOW`], so a damaged file can only misplace a sum, never index out of bounds, and the
/// hot loop carries no bounds check. (Finding the window's end first, to drop the compare per
/// posting, measured slower: a binary search there is a chain of cache misses.)
#[inline]
pub(super) fn accumulate<const TRACK: bool>(
    items: &[rkyv::rend::u32_le],
    weights: &[rkyv::rend::f32_le],
    (lo, hi): (u32, u32),
    (acc, seen): (&mut [f32; WINDOW], &mut [u64; WINDOW / 64]),
    contribution: impl Fn(f32) -> f32,
) -> usize {
    let mut n = 0;
    for (d, w) in items.iter().zip(weights) {
        let d = d.to_native();
        if d >= hi {
            break;
        }
        n += 1;
        let local = d.wrapping_sub(lo) as usize % WINDOW;
        acc[local] += contribution(w.to_native());
        if TRACK {
            seen[local / 64] |= 1u64 << (local % 64);
        }
    }
    n
}

/// Words of 64 slots a swept window tests against one value of θ.
pub(super) const SWEEP_WORDS: usize = 16;

/// Set bit `j` of `out[w]` for each slot `64w + j` whose sum `a` may still reach θ: `a > 0`,
/// `a >= cut · m` and `a + ne_raw >= whole · m` (`m` from `per_slot`; see [`sweep_cuts`]).
/// A branch-free pass, compiled for wider vector units too and picked at run time.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(super) fn sweep_mask(
    acc: &[f32],
    per_slot: &[rkyv::rend::f32_le],
    (cut, whole, ne_raw): (f32, f32, f32),
    out: &mut [u64],
) {
    let keep = |a: f32, m: &rkyv::rend::f32_le| {
        let m = m.to_native();
        (a > 0.0) & (a >= cut * m) & (a + ne_raw >= whole * m)
    };
    for ((acc, per_slot), out) in acc.chunks(64).zip(per_slot.chunks(64)).zip(out) {
        // Count first (a sum that vectorises); most words have no survivor.
        let any: u32 = acc
            .iter()
            .zip(per_slot)
            .map(|(&a, m)| u32::from(keep(a, m)))
            .sum();
        let mut bits = 0u64;
        if any > 0 {
            for (j, (&a, m)) in acc.iter().zip(per_slot).enumerate() {
                bits |= u64::from(keep(a, m)) << j;
            }
        }
        *out = bits;
    }
}

/// Columns summed in one pass over the accumulator.
pub(super) const COLUMN_BATCH: usize = 4;

/// Add `step · q` of each column into `acc`, slot by slot (a loop per batch size, so each is
/// one vectorised pass). Compiled for wider vector units too, picked at run time: a default
/// build targets the oldest x86-64, whose 4-wide conversions halve this loop's speed.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(super) fn add_columns(acc: &mut [f32], cols: &[(&[u8], f32)]) {
    let f = f32::from;
    match *cols {
        [] => {}
        [(a, sa)] => {
            for (x, &a) in acc.iter_mut().zip(a) {
                *x += sa * f(a);
            }
        }
        [(a, sa), (b, sb)] => {
            for ((x, &a), &b) in acc.iter_mut().zip(a).zip(b) {
                *x += sa * f(a) + sb * f(b);
            }
        }
        [(a, sa), (b, sb), (c, sc)] => {
            for (((x, &a), &b), &c) in acc.iter_mut().zip(a).zip(b).zip(c) {
                *x += sa * f(a) + sb * f(b) + sc * f(c);
            }
        }
        [(a, sa), (b, sb), (c, sc), (d, sd), ref rest @ ..] => {
            for ((((x, &a), &b), &c), &d) in acc.iter_mut().zip(a).zip(b).zip(c).zip(d) {
                *x += sa * f(a) + sb * f(b) + sc * f(c) + sd * f(d);
            }
            add_columns(acc, rest);
        }
    }
}

/// First index at or after `from` whose item id is `>= id`: galloping, then binary search, so
/// a dense list is crossed in small steps and a sparse jump costs a logarithm.
#[inline]
pub(super) fn seek(items: &[rkyv::rend::u32_le], from: usize, id: u32) -> usize {
    let n = items.len();
    if from >= n || items[from].to_native() >= id {
        return from;
    }
    let mut lo = from;
    let mut step = 1;
    while lo + step < n && items[lo + step].to_native() < id {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(n);
    lo + 1 + items[lo + 1..hi].partition_point(|v| v.to_native() < id)
}
