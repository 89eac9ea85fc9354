//! A crate whose benchmarks misbehave.

/// Returns its argument.
pub fn id(x: u64) -> u64 {
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn id() {
        assert_eq!(super::id(3), 3);
    }
}
