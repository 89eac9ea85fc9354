//! Five tests pass and one fails, everywhere.

pub fn double(x: i64) -> i64 {
    x * 2
}

#[cfg(test)]
mod tests {
    use super::double;

    #[test]
    fn a_zero() {
        assert_eq!(double(0), 0);
    }

    #[test]
    fn b_one() {
        assert_eq!(double(1), 2);
    }

    #[test]
    fn c_negative() {
        assert_eq!(double(-4), -8);
    }

    #[test]
    fn d_wrong_on_purpose() {
        assert_eq!(double(2), 5, "this test is meant to fail");
    }

    #[test]
    fn e_large() {
        assert_eq!(double(1 << 40), 1 << 41);
    }

    #[test]
    fn f_many() {
        assert!((0..1000).all(|i| double(i) == i + i));
    }
}
