//! A function-like macro that sums integer literals at compile time.

extern crate proc_macro;
use proc_macro::{TokenStream, TokenTree};

fn literals(input: TokenStream) -> Vec<i64> {
    input
        .into_iter()
        .filter_map(|t| match t {
            TokenTree::Literal(l) => l.to_string().parse().ok(),
            _ => None,
        })
        .collect()
}

#[proc_macro]
pub fn const_sum(input: TokenStream) -> TokenStream {
    let s: i64 = literals(input).iter().sum();
    format!("{}i64", s).parse().unwrap()
}
