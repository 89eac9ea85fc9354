//! Never builds: its build script fails on purpose.
pub fn unreachable() {}
