//! Builds anywhere; its tests need a crate the node cannot supply.

pub fn triple(x: u32) -> u32 {
    x * 3
}

#[cfg(test)]
mod tests {
    #[test]
    fn triples() {
        assert_eq!(wcr_fx_v_absent_helper::id(super::triple(3)), 9);
    }
}
