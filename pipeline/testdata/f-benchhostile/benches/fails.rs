// Fails on both sides.
fn main() {
    eprintln!("benchmark setup failed");
    std::process::exit(3);
}
