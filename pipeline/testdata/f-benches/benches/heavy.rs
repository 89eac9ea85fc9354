// A benchmark five times as costly as `light`.
fn main() {
    let n = 10_000_000 + std::env::args().count() as u64;
    println!("heavy: {}", wcr_fx_benches::work(n));
}
