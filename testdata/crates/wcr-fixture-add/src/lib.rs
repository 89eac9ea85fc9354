//! Checked integer helpers.

/// Adds two numbers, returning `None` on overflow.
pub fn checked_add(a: u32, b: u32) -> Option<u32> {
    a.checked_add(b)
}

/// Sums a slice, saturating at `u64::MAX`.
pub fn saturating_sum(xs: &[u64]) -> u64 {
    xs.iter().fold(0u64, |acc, x| acc.saturating_add(*x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(checked_add(2, 3), Some(5));
    }

    #[test]
    fn overflows() {
        assert_eq!(checked_add(u32::MAX, 1), None);
    }

    #[test]
    fn sums() {
        assert_eq!(saturating_sum(&[1, 2, 3]), 6);
        assert_eq!(saturating_sum(&[u64::MAX, 1]), u64::MAX);
    }
}
