/// Adds two numbers.
pub fn add(a: u32, b: u32) -> u32 {
    a + b
}

/// The version of this crate, so that a dependent can tell which one it got.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
