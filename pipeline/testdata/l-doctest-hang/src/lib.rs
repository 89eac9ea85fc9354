/// Never returns when called.
///
/// ```
/// wcr_fx_doctest_hang::spin();
/// ```
pub fn spin() {
    loop {
        std::hint::spin_loop();
    }
}

/// Returns its argument.
///
/// ```
/// assert_eq!(wcr_fx_doctest_hang::id(7), 7);
/// ```
pub fn id(x: u32) -> u32 {
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn id() {
        assert_eq!(super::id(1), 1);
    }
}
