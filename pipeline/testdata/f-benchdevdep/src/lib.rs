//! A library benchmarked with criterion.

/// Squares a number.
pub fn square(x: u64) -> u64 {
    x * x
}
