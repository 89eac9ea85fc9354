//! The library builds with old toolchains; its tests use an API
//! stabilised in Rust 1.70.

pub fn half(x: u32) -> Option<u32> {
    if x % 2 == 0 {
        Some(x / 2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn halves() {
        assert!(super::half(42).is_some_and(|v| v == 21));
    }

    #[test]
    fn odd() {
        assert!(super::half(3).is_none());
    }
}
