//! A seed from the OS where there is one, a fixed one in wasm.

#[cfg(not(target_arch = "wasm32"))]
pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("getrandom");
    u64::from_le_bytes(b) | 1
}

#[cfg(target_arch = "wasm32")]
pub fn seed() -> u64 {
    0x9e37_79b9_7f4a_7c15
}

pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_odd() {
        assert_eq!(seed() & 1, 1);
    }

    #[test]
    fn xorshift_moves() {
        assert_ne!(xorshift(seed()), seed());
    }
}
