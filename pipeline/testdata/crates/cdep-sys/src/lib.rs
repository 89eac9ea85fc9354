extern "C" {
    pub fn wcr_fx_add(a: i32, b: i32) -> i32;
}
