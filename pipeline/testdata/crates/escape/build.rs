use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// Tries what a sandboxed build script must not be able to do, and fails the
// build with what was refused.
fn main() {
    let mut refused = Vec::new();
    let addr: SocketAddr = "127.0.0.1:47391".parse().unwrap();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(mut s) => {
            let _ = s.write_all(b"escaped from the build sandbox\n");
        }
        Err(e) => refused.push(format!("connect {}: {}", addr, e)),
    }
    for path in [
        "/usr/local/wcr-fx-escape-probe".to_string(),
        format!("{}/escaped-from-build.txt", std::env::var("CARGO_MANIFEST_DIR").unwrap()),
    ] {
        match std::fs::write(&path, b"escaped\n") {
            Ok(()) => {}
            Err(e) => refused.push(format!("write {}: {}", path, e)),
        }
    }
    if !refused.is_empty() {
        panic!("refused: {}", refused.join("; "));
    }
}
