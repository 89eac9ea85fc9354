//! `#![deny(warnings)]` turns every warning into an error, and the cfg
//! below names a feature the crate does not declare: rustc 1.80 and later
//! warn about it (`unexpected_cfgs`), rustc 1.63 does not know that lint.
//! Built with the crate's lints capped at warnings, it builds with both.
#![deny(warnings)]

#[cfg(feature = "wcr_undeclared_feature")]
pub fn hidden() {}

pub fn triple(x: u64) -> u64 {
    x * 3
}

#[cfg(test)]
mod tests {
    #[test]
    fn triples() {
        assert_eq!(super::triple(14), 42);
    }
}
