wcr_fx_snoop_macro::snoop_here!();

#[test]
fn expanded() {}
