//! A library whose default feature is for native hosts only: built for
//! wasm32 with it, it does not compile; with `--no-default-features
//! --features wasm` it does, and its tests pass.

#[cfg(all(target_arch = "wasm32", feature = "native"))]
compile_error!("the `native` feature spawns processes, which wasm32 cannot; build with --no-default-features --features wasm");

/// Adds two numbers.
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// The backend the crate was built with.
pub fn backend() -> &'static str {
    if cfg!(feature = "wasm") {
        "wasm"
    } else if cfg!(feature = "native") {
        "native"
    } else {
        "none"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(2, 3), 5);
    }

    #[test]
    fn backend_matches_target() {
        if cfg!(target_arch = "wasm32") {
            assert_eq!(super::backend(), "wasm");
        } else {
            assert_ne!(super::backend(), "none");
        }
    }
}
