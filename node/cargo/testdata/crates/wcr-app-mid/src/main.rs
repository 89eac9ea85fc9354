fn main() {
    println!("double(21) = {} with wcr-leaf {}", wcr_mid::double(21), wcr_mid::leaf_version());
}
