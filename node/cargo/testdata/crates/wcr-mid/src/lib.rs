/// Doubles a number, through wcr-leaf when the "extra" feature is on.
pub fn double(x: u32) -> u32 {
    #[cfg(feature = "extra")]
    {
        leaf::add(x, x)
    }
    #[cfg(not(feature = "extra"))]
    {
        x * 2
    }
}

/// Which wcr-leaf this crate was built with ("none" without "extra").
pub fn leaf_version() -> &'static str {
    #[cfg(feature = "extra")]
    {
        leaf::VERSION
    }
    #[cfg(not(feature = "extra"))]
    {
        "none"
    }
}
