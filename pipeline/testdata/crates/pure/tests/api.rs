#[test]
fn public_api() {
    assert_eq!(wcr_fx_pure::gcd(12, 18), 6);
}
