use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    c.bench_function("square", |b| b.iter(|| wcr_fx_benchdevdep::square(criterion::black_box(7))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
