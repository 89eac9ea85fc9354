//! One test never ends; the others must still be counted.

pub fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_before() {
        assert_eq!(collatz_steps(6), 8);
    }

    #[test]
    fn b_spins_forever() {
        let mut x = 1u64;
        loop {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            unsafe { std::ptr::write_volatile(&mut x, x) };
        }
    }

    #[test]
    fn c_after() {
        assert_eq!(collatz_steps(27), 111);
    }

    #[test]
    fn d_last() {
        assert_eq!(collatz_steps(1), 0);
    }
}
