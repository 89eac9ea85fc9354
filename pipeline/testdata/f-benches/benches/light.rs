// A cheap benchmark: a few hundred thousand steps. The step count depends
// on the arguments so that the optimiser cannot precompute the result.
fn main() {
    let n = 300_000 + std::env::args().count() as u64;
    println!("light: {}", wcr_fx_benches::work(n));
}
