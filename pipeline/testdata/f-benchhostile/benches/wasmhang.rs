// Ends natively; never ends in wasm.
fn main() {
    let mut x = std::env::args().count() as u64;
    if cfg!(target_arch = "wasm32") {
        loop {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            if x == 0 {
                break;
            }
        }
    }
    println!("{}", wcr_fx_benchhostile::id(x));
}
