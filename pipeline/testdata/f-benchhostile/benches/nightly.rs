#![feature(test)]
extern crate test;

#[bench]
fn add(b: &mut test::Bencher) {
    b.iter(|| wcr_fx_benchhostile::id(test::black_box(1)) + 1);
}
