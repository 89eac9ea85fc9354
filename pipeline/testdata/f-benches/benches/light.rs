// A cheaper benchmark: two million steps. The step count depends
// on the arguments so that the optimiser cannot precompute the result.
fn main() {
    let n = 2_000_000 + std::env::args().count() as u64;
    println!("light: {}", wcr_fx_benches::work(n));
}
