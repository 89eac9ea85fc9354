//! Builds only when neither the crate's own Cargo configuration nor one a
//! build script planted applies.

#[cfg(wcr_crate_config)]
compile_error!("the crate's own .cargo/config.toml applied");

#[cfg(wcr_build_script_config)]
compile_error!("a configuration planted by a build script applied");

pub fn format(n: u64) -> String {
    itoa::Buffer::new().format(n).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::format(1234), "1234");
    }
}
