fn main() {
    println!("wcr-leaf {} says 2 + 3 = {}", wcr_leaf::VERSION, wcr_leaf::add(2, 3));
}
