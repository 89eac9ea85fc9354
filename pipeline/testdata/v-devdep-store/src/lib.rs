//! Its tests need a crate that only the registry's releases supply.

pub fn square(x: u32) -> u32 {
    x * x
}

#[cfg(test)]
mod tests {
    #[test]
    fn squares() {
        assert_eq!(wcr_fx_v_store_helper::id(super::square(3)), 9);
    }
}
