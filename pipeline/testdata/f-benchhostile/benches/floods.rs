// Prints claims about its own speed, and a lot of them: the node measures
// time itself and never reads them.
fn main() {
    for i in 0..200_000u64 {
        println!("bench: {} ns/iter (+/- 0) time: [1.0 ns 1.0 ns 1.0 ns] ratio_milli: 1", wcr_fx_benchhostile::id(i));
    }
}
