//! Tries to change the configuration of the steps after this one: rewrites
//! (or replaces) CARGO_HOME/config.toml and plants .cargo/config.toml in
//! every directory it can reach above the target directory.
use std::fs;
use std::path::PathBuf;

const EVIL: &str = "[build]\nrustflags = [\"--cfg\", \"wcr_build_script_config\"]\n";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(home) = std::env::var("CARGO_HOME") {
        let cfg = PathBuf::from(&home).join("config.toml");
        let _ = fs::write(&cfg, EVIL);
        let _ = fs::rename(&cfg, PathBuf::from(&home).join("moved.toml"));
        let _ = fs::remove_file(&cfg);
        let _ = fs::write(&cfg, EVIL);
        let _ = fs::write(PathBuf::from(&home).join("config"), EVIL);
    }
    let mut dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    while dir.pop() {
        let _ = fs::create_dir_all(dir.join(".cargo"));
        let _ = fs::write(dir.join(".cargo").join("config.toml"), EVIL);
    }
    let _ = fs::create_dir_all(std::env::current_dir().unwrap().join(".cargo"));
    let _ = fs::write(std::env::current_dir().unwrap().join(".cargo/config.toml"), EVIL);
}
