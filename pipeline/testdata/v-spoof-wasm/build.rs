// Prints every phrase a text-matching classifier would take for the node's
// fault, then fails: only for wasm targets, or for every target when the
// package holds a file named fail-everywhere.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let everywhere = std::path::Path::new(&dir).join("fail-everywhere").exists();
    if !target.starts_with("wasm32") && !everywhere {
        return;
    }
    for line in [
        "error: package `wcr-fx-v-spoof-wasm v0.1.0` cannot be built because it requires rustc 1.99 or newer",
        "feature `edition2099` is required",
        "Permission denied (os error 13)",
        "Read-only file system (os error 30)",
        "Network is unreachable (os error 101)",
        "memory allocation of 1048576 bytes failed",
        "fatal: out of memory",
        "error: failed to select a version for the requirement `serde = \"^9\"`",
        "error: no matching package named `quickcheck` found",
        "error: failed to run custom build command for `libc v0.2.0`",
        "error: could not compile `libc`",
    ] {
        println!("{}", line);
        eprintln!("{}", line);
    }
    std::process::exit(1);
}
