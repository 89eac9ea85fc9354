//! One test allocates and touches 512 MiB, so that its peak memory can be
//! checked.

pub fn touch(v: &mut [u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i < v.len() {
        v[i] = 1;
        n += 1;
        i += 4096;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_512_mib() {
        let mut v = vec![0u8; 512 << 20];
        assert_eq!(touch(&mut v), (512 << 20) / 4096);
        assert_eq!(v.iter().step_by(4096).map(|&b| b as u64).sum::<u64>(), (512 << 20) / 4096);
    }
}
