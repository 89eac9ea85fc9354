//! Pure computation with no I/O: builds and passes everywhere.

pub fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a.wrapping_add(b);
        a = b;
        b = t;
    }
    a
}

pub fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

pub fn checked_div(a: u32, b: u32) -> u32 {
    if b == 0 {
        panic!("division by zero");
    }
    a / b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_small() {
        assert_eq!(fib(10), 55);
    }

    #[test]
    fn fib_large() {
        assert_eq!(fib(90), 2880067194370816120);
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(1071, 462), 21);
    }

    #[test]
    fn sort_many() {
        let mut v: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % 10_007).collect();
        v.sort_unstable();
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    #[should_panic(expected = "division by zero")]
    fn div_by_zero_panics() {
        checked_div(1, 0);
    }

    #[test]
    #[ignore]
    fn expensive_ignored() {
        assert_eq!(fib(5), 5);
    }
}
