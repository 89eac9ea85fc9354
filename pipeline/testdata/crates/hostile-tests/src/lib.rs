//! Tests that attack the sandbox they run in. Each must be contained
//! without hiding the others.

pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // The attacks run only inside the pipeline's sandbox (whose hostname
    // is "sandbox"): this crate's tests are never to be run on a host.
    fn guard() {
        let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        if h.trim() != "sandbox" {
            panic!("refusing to attack a host: not inside the pipeline's sandbox");
        }
    }

    #[test]
    fn a_first_passes() {
        assert_eq!(add(2, 2), 4);
    }

    // Every child runs this test again, so the tree grows until the
    // process limit stops it.
    #[test]
    fn fork_bomb() {
        guard();
        let exe = std::env::current_exe().unwrap();
        let mut kids = Vec::new();
        for _ in 0..100_000 {
            match std::process::Command::new(&exe)
                .args(&["--exact", "tests::fork_bomb", "--nocapture", "--test-threads=1"])
                .spawn()
            {
                Ok(c) => kids.push(c),
                Err(_) => break,
            }
        }
        panic!("spawned {} children", kids.len());
    }

    #[test]
    fn fill_tmp() {
        guard();
        let mut f = std::fs::File::create("/tmp/wcr-fx-fill").unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..10 * 1024 {
            f.write_all(&chunk).unwrap();
        }
    }

    #[test]
    fn flood_stdout() {
        guard();
        let line = vec![b'x'; 1 << 20];
        let out = std::io::stdout();
        let mut out = out.lock();
        for _ in 0..100 {
            let _ = out.write_all(&line);
        }
    }

    #[test]
    fn never_ends() {
        guard();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn allocates_6_gib() {
        guard();
        let v = vec![1u8; 6 << 30];
        assert_eq!(v[v.len() - 1], 1);
    }

    #[test]
    fn connects_to_the_host() {
        guard();
        let r = std::net::TcpStream::connect("127.0.0.1:23393");
        assert!(r.is_err(), "connected to the host's loopback");
    }

    #[test]
    fn z_last_passes() {
        assert_eq!(add(40, 2), 42);
    }
}
