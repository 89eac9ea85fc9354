use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// Tries the network and writes outside its directory, ignores every error
// and prints nothing: only the sandbox can tell.
fn main() {
    if !in_sandbox() {
        return;
    }
    let addr: SocketAddr = "127.0.0.1:23392".parse().unwrap();
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    let _ = std::fs::write("/usr/local/wcr-fx-hostile-build", b"escaped\n");
    let _ = std::fs::write("/etc/wcr-fx-hostile-build", b"escaped\n");
}

// The attacks run only inside the pipeline's sandbox (whose hostname is
// "sandbox"): these fixtures are never to be built or tested on a host.
fn in_sandbox() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim() == "sandbox")
        .unwrap_or(false)
}
