//! Builds everywhere; one of its tests fails when compiled for wasm.

pub fn word_bits() -> usize {
    std::mem::size_of::<usize>() * 8
}

#[cfg(test)]
mod tests {
    #[test]
    fn sixty_four_bits() {
        assert_eq!(super::word_bits(), 64);
    }

    #[test]
    fn nonzero() {
        assert!(super::word_bits() > 0);
    }
}
