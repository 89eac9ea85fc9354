// Tries to read the node's secrets and to leave the sandbox, and describes
// what happened. Shared by the build-script and proc-macro canaries.
use std::fs;
use std::process::Command;

extern "C" {
    fn syscall(n: i64, ...) -> i64;
}

// The attacks run only inside the pipeline's sandbox (whose hostname is
// "sandbox"): these fixtures are never to be built or tested on a host.
fn in_sandbox() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim() == "sandbox")
        .unwrap_or(false)
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(1024)]).replace('\0', " ");
    s.replace('\n', " ")
}

fn snoop() -> String {
    if !in_sandbox() {
        return "SNOOP-SKIPPED: not inside the pipeline's sandbox".to_string();
    }
    let mut out = vec!["SNOOP-BEGIN".to_string()];
    let mut paths: Vec<String> = vec![
        "/proc/1/environ".into(),
        "/proc/self/environ".into(),
        "/proc/1/cmdline".into(),
        "/tmp/wcr-canary-sandbox/secret".into(),
    ];
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.chars().all(|c| c.is_ascii_digit()) {
                paths.push(format!("/proc/{}/environ", name));
                paths.push(format!("/proc/{}/cmdline", name));
            }
        }
    }
    for p in paths {
        match fs::read(&p) {
            Ok(b) => out.push(format!("read {}: {}", p, show(&b))),
            Err(e) => out.push(format!("read {}: refused: {}", p, e)),
        }
    }
    let r = unsafe { syscall(101, 0i64, 0i64, 0i64, 0i64) }; // ptrace(PTRACE_TRACEME)
    out.push(format!("ptrace: {} {}", r, errno()));
    let (src, dst, fstype) = (b"none\0", b"/tmp\0", b"tmpfs\0");
    let r = unsafe { syscall(165, src.as_ptr(), dst.as_ptr(), fstype.as_ptr(), 0i64, 0i64) };
    out.push(format!("mount: {} {}", r, errno()));
    match Command::new("unshare").args(&["-Ur", "id", "-u"]).output() {
        Ok(o) => out.push(format!(
            "unshare -Ur: {} {} {}",
            o.status,
            show(&o.stdout),
            show(&o.stderr)
        )),
        Err(e) => out.push(format!("unshare -Ur: {}", e)),
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let _ = fs::create_dir_all("/tmp/wcr-canary-sandbox");
    for p in [
        "/usr/local/wcr-fx-snoop-write".to_string(),
        "/etc/wcr-fx-snoop-write".to_string(),
        "/tmp/wcr-canary-sandbox/written".to_string(),
        format!("{}/wcr-fx-snoop-write", manifest),
    ] {
        match fs::write(&p, b"escaped\n") {
            Ok(()) => out.push(format!("write {}: ok", p)),
            Err(e) => out.push(format!("write {}: refused: {}", p, e)),
        }
    }
    out.push("SNOOP-END".to_string());
    out.join("\n")
}
