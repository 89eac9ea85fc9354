//! Uses the file system and threads.

use std::io::{Read, Write};

pub fn roundtrip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let path = std::env::temp_dir().join(format!("wcr-fx-{}", std::process::id()));
    std::fs::File::create(&path)?.write_all(data)?;
    let mut out = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut out)?;
    std::fs::remove_file(&path)?;
    Ok(out)
}

pub fn parallel_sum(v: Vec<u64>) -> u64 {
    let (a, b) = v.split_at(v.len() / 2);
    let (a, b) = (a.to_vec(), b.to_vec());
    let h = std::thread::spawn(move || a.iter().sum::<u64>());
    b.iter().sum::<u64>() + h.join().unwrap()
}

pub fn sequential_sum(v: &[u64]) -> u64 {
    v.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_roundtrip() {
        assert_eq!(roundtrip(b"hello").unwrap(), b"hello");
    }

    #[test]
    fn thread_sum() {
        assert_eq!(parallel_sum((1..=100).collect()), 5050);
    }

    #[test]
    fn plain_sum() {
        assert_eq!(sequential_sum(&[1, 2, 3]), 6);
    }
}
