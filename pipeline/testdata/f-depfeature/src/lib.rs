//! Formats numbers with a dependency; declares a dependency feature that
//! does not exist.

/// Formats a number.
pub fn format(x: u32) -> String {
    itoa::Buffer::new().format(x).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::format(42), "42");
    }
}
