//! A small compute kernel with two benchmarks of different cost.

/// Sums `x * x mod 7` over `0..n`, a loop the optimiser cannot fold away
/// when `n` comes from outside.
pub fn work(n: u64) -> u64 {
    let mut acc = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add((x ^ i) % 7);
    }
    acc
}

#[cfg(test)]
mod tests {
    #[test]
    fn works() {
        assert_eq!(super::work(0), 0);
        assert!(super::work(100) > 0);
    }
}
