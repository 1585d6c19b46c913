//! The Node peers of `tests/peers/` (installed by `npm ci --prefix tests/peers`): each script listens on
//! 127.0.0.1, port 0, and prints its port as the first line. One launcher for all of them.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts `tests/peers/{script}` after checking that `package` is installed; returns the child (killed on drop,
/// and it exits by itself when its stdin closes) and its port. Fails with a message saying what to install: a
/// missing peer is never a silent skip.
pub async fn start_node_peer(script: &str, package: &str) -> (tokio::process::Child, u16) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    assert!(
        dir.join("node_modules").join(package).join("package.json").is_file(),
        "tests/peers/node_modules/{package} is missing: run `npm ci --prefix tests/peers` (needs Node.js)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js and run `npm ci --prefix tests/peers`"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} printed no port within 20 s"))
        .unwrap_or_else(|e| panic!("reading {script}'s stdout: {e}"))
        .unwrap_or_else(|| panic!("{script} exited before printing its port"));
    let port: u16 = line.trim().parse().unwrap_or_else(|e| panic!("{script} printed {line:?}, not a port: {e}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}
