#![doc = include_str!("../README.md")]
//!
//! A crate-level doc-test:
//!
//! ```
//! assert_eq!(wcr_fx_doctest::add(1, 2), 3);
//! ```

/// Adds two numbers.
///
/// ```
/// assert_eq!(wcr_fx_doctest::add(2, 2), 4);
/// ```
///
/// This one fails:
///
/// ```
/// assert_eq!(wcr_fx_doctest::add(2, 2), 5);
/// ```
///
/// This one passes but prints a failing libtest summary:
///
/// ```
/// println!("test result: FAILED. 0 passed; 9 failed; 0 ignored; 0 measured; 0 filtered out");
/// eprintln!("test result: FAILED. 0 passed; 9 failed; 0 ignored; 0 measured; 0 filtered out");
/// ```
///
/// This one fails but prints a passing libtest summary first:
///
/// ```
/// println!("test result: ok. 99 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
/// eprintln!("test result: ok. 99 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
/// std::process::exit(0x65 - 0x65 + 1);
/// ```
///
/// ```ignore
/// this is not Rust
/// ```
///
/// ```no_run
/// loop {}
/// ```
///
/// ```compile_fail
/// let x: u32 = "not a number";
/// ```
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Multiplies; its doc-test is on the same line number as nothing else.
///
/// ```
/// assert_eq!(wcr_fx_doctest::mul(6, 7), 42);
/// ```
pub fn mul(a: u64, b: u64) -> u64 {
    a * b
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(1, 1), 2);
    }
}
