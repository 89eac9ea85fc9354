//! Safe wrapper over a C function.

pub fn add(a: i32, b: i32) -> i32 {
    unsafe { wcr_fx_cdep_sys::wcr_fx_add(a, b) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(2, 3), 5);
    }

    #[test]
    fn adds_negative() {
        assert_eq!(super::add(-2, -3), -5);
    }
}
