//! A command whose reader has gone (`vitalhub report | head`) ends quietly with status 141,
//! the status of a process killed by SIGPIPE, instead of panicking over the reader's output.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Runs `vitalhub ARGS` with stdout a pipe whose reading end is already closed.
fn run_into_closed_pipe(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .args(args)
        .current_dir(dir)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("vitalhub starts");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("stderr read");
    let status = child.wait().expect("vitalhub ends");
    // Rust ignores SIGPIPE, so the process must choose its status itself; a signal would mean
    // the runtime changed under us.
    assert_eq!(status.signal(), None, "stderr: {stderr}");
    (status.code(), stderr)
}

#[test]
fn a_listing_into_a_closed_pipe_ends_quietly_with_status_141() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!("{root}/config/vitalhub.toml");
    let (code, stderr) = run_into_closed_pipe(&["--config", &config, "mappings"], dir.path());
    assert_eq!(code, Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(stderr.trim().is_empty(), "stderr: {stderr}");
}
