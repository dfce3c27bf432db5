//! Integer and float narrowing in one place, each with the argument for why it loses nothing
//! that matters. The library denies `clippy::cast_possible_truncation`; a cast that narrows
//! goes through here or carries its own `expect` with a reason.

// Segment offsets and counts are u64 on disk and index memory-mapped files as usize, and the
// conversion below relies on it.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "recostore supports 64-bit targets only: segment offsets are u64 and index memory-mapped files"
);

/// A u64 offset, length or count as a usize. Lossless: recostore builds for 64-bit targets only
/// (the `compile_error!` above).
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "usize is 64 bits on every target recostore builds for"
)]
pub(crate) fn usize_from(x: u64) -> usize {
    x as usize
}

/// A length or position within the dense u32 id space (items, users, tags, baskets) as a u32.
/// Such values are bounded by the id counters, which stop at `u32::MAX`
/// ([`crate::Error::IdSpaceExhausted`]); saturating instead of wrapping keeps a violated
/// bound from aliasing a small id.
#[inline(always)]
pub(crate) fn u32_from(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A duration or count in u128 (what `Duration::as_nanos` gives) as a u64, saturating: 2^64 ns
/// is 584 years.
#[inline(always)]
pub(crate) fn u64_from(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// An f64 computed for accuracy (sums, ratios, logarithms) stored or returned in f32, the
/// precision every weight and score is kept in. Values outside f32's range become ±infinity,
/// which no caller produces from finite inputs (ratios and logs of counts).
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "narrowing to f32 is the point: scores and weights are f32"
)]
pub(crate) fn f32_from(x: f64) -> f32 {
    x as f32
}

/// A count computed in floating point (a share of a count) as `usize`: rounded toward zero,
/// saturating, NaN and negatives giving 0 (what Rust's float-to-int cast does).
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "a saturating float-to-count conversion is the point"
)]
pub(crate) fn usize_from_f64(x: f64) -> usize {
    x as usize
}
