//! Random bytes from the OS on every target.

pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).expect("getrandom");
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn varies() {
        let a: Vec<u32> = (0..8).map(|_| super::random_u32()).collect();
        assert!(a.iter().any(|&x| x != a[0]));
    }
}
