//! Wasm tests that try to leave the directory the runner gives them: links
//! to relative and absolute targets, `..` paths, absolute paths, writes
//! through links. Each test fails with "ESCAPED" and what it got when an
//! attempt works, and passes when every attempt is refused.

pub fn double(x: u32) -> u32 {
    x * 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_math() {
        assert_eq!(super::double(21), 42);
    }
}

#[cfg(all(test, target_os = "wasi"))]
mod escape {
    use std::fs;

    const UP: &str = "../../../../../../../../../../../../../../../../../../../../../../../..";
    const CANARY: &str = "/tmp/wcr-canary";

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn path_symlink(old_ptr: *const u8, old_len: usize, fd: u32, new_ptr: *const u8, new_len: usize) -> u16;
    }

    /// Creates a link in the preopened root (fd 3) with WASI's path_symlink.
    fn symlink(target: &str, link: &str) -> u16 {
        unsafe { path_symlink(target.as_ptr(), target.len(), 3, link.as_ptr(), link.len()) }
    }

    fn must_not_read(path: &str) {
        if let Ok(s) = fs::read_to_string(path) {
            panic!("ESCAPED: read {}: {}", path, s);
        }
        if let Ok(rd) = fs::read_dir(path) {
            let names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            if !names.is_empty() {
                panic!("ESCAPED: listed {}: {:?}", path, names);
            }
        }
    }

    fn must_not_write(path: &str) {
        if fs::write(path, b"written by a wasm test").is_ok() {
            // Inside the root is fine (the path was confined); anything
            // that reads back through the host's view is not.
            println!("wrote {}", path);
        }
    }

    #[test]
    fn relative_links_out() {
        for (i, target) in [
            format!("{}/tmp/wcr-canary/secret", UP),
            format!("{}/tmp/wcr-canary/data/node.key", UP),
            format!("{}/tmp/wcr-canary/data/admin-token", UP),
            format!("{}/etc/passwd", UP),
            format!("{}/usr/share/cargo/registry", UP),
            "..".to_string(),
        ]
        .iter()
        .enumerate()
        {
            let link = format!("rel{}", i);
            let _ = symlink(target, &link);
            must_not_read(&link);
            must_not_read(&format!("/{}", link));
        }
    }

    #[test]
    fn absolute_links_out() {
        for (i, target) in ["/tmp/wcr-canary/secret", "/tmp/wcr-canary/data/node.key", "/etc/passwd", "/usr/share/cargo/registry", "/", "/proc/self/environ"]
            .iter()
            .enumerate()
        {
            let link = format!("abs{}", i);
            let _ = symlink(target, &link);
            must_not_read(&link);
        }
    }

    #[test]
    fn dotdot_and_absolute_paths() {
        for p in [
            format!("{}/tmp/wcr-canary/secret", UP),
            format!("{}/tmp/wcr-canary/data/node.key", CANARY),
            format!("{}/secret", CANARY),
            format!("{}/data/admin-token", CANARY),
            "/../../../../etc/passwd".to_string(),
            format!("{}/etc/passwd", UP),
            "/etc/passwd".to_string(),
            "..".to_string(),
            "/..".to_string(),
        ]
        .iter()
        {
            must_not_read(p);
        }
    }

    #[test]
    fn writes_stay_inside() {
        let _ = symlink(&format!("{}/tmp/wcr-canary", UP), "out");
        let _ = symlink(CANARY, "outabs");
        let _ = symlink("..", "up");
        must_not_write("out/written-by-wasm");
        must_not_write("outabs/written-by-wasm");
        must_not_write("up/written-by-wasm");
        must_not_write(&format!("{}/tmp/wcr-canary/written-by-wasm", UP));
        must_not_write(&format!("{}/written-by-wasm", UP));
        // Whatever was written must be in the test's own directory: the
        // root holds only files this test created.
        for e in fs::read_dir("/").unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                ["out", "outabs", "up", "written-by-wasm"].contains(&name.as_str()),
                "ESCAPED: the root holds {} that this test did not create", name
            );
        }
    }

    #[test]
    fn own_directory_is_fresh_and_works() {
        let before: Vec<_> = fs::read_dir("/").unwrap().collect();
        assert!(before.is_empty(), "the test's directory is not fresh: {} entries", before.len());
        fs::create_dir("sub").unwrap();
        fs::write("sub/hello.txt", b"hello").unwrap();
        assert_eq!(fs::read_to_string("/sub/hello.txt").unwrap(), "hello");
        assert_eq!(fs::read_to_string("sub/../sub/hello.txt").unwrap(), "hello");
    }
}
