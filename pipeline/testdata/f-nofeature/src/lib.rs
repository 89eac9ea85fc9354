//! A library that declares, for wasm, a feature it does not define.

/// Doubles a number.
pub fn double(x: u32) -> u32 {
    x * 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(21), 42);
    }
}
