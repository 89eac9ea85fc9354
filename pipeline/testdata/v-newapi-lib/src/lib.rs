//! Uses an API stabilised in Rust 1.70: an older toolchain cannot build it
//! for any target, wasm or not.

pub fn big(x: Option<u32>) -> bool {
    x.is_some_and(|v| v > 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn big() {
        assert!(super::big(Some(101)));
        assert!(!super::big(None));
    }
}
