//! One test allocates until it runs out of memory.

pub fn checksum(v: &[u8]) -> u64 {
    v.iter().map(|&b| b as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small() {
        assert_eq!(checksum(&[1, 2, 3]), 6);
    }

    #[test]
    fn b_grows_without_bound() {
        let mut keep: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let last = chunk.len() - 1;
            unsafe { std::ptr::write_volatile(&mut chunk[last], 1) };
            keep.push(chunk);
            if keep.len() == usize::MAX {
                break;
            }
        }
        assert!(checksum(&keep[0]) > 0);
    }

    #[test]
    fn c_after() {
        assert_eq!(checksum(&[255; 4]), 1020);
    }
}
