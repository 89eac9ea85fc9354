use wcr_fx_macro::const_sum;

#[test]
fn sums_at_compile_time() {
    assert_eq!(const_sum!(1, 2, 3), 6);
}

#[test]
fn empty_is_zero() {
    assert_eq!(const_sum!(), 0);
}
