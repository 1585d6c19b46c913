//! Secrets never leak: a run against the embedded target, clean and with a fault (so that findings, reproductions
//! and replay commands are written), and a replay of its counterexample; every file written and everything printed
//! is scanned for the secrets the run used: webhook secrets and API keys, the cast's passwords and TOTP seed, and
//! anything shaped like the target's session tokens.

use std::path::Path;
use std::process::{Command, Output};

/// Secrets the run necessarily handles (the embedded target's test secrets, the adapter's cast credentials).
const PLANTED: &[&str] = &[
    "conform-shkeeper-key",
    "conform-rn-key",
    "conform-rn-webhook-secret",
    "Y29uZm9ybS1zdGFuZGFyZC13ZWJob29rLXNlY3JldA",
    "JBSWY3DPEHPK3PXP",
    "pw-seed",
];

fn conform(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).args(args).current_dir(dir).output().expect("run conform")
}

/// The embedded target's access and refresh tokens are 64 lowercase hex digits.
fn token_shaped(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut run = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() || (b'a'..=b'f').contains(b) {
            run += 1;
            if run == 64 {
                return Some(text[i + 1 - 64..=i].to_owned());
            }
        } else {
            run = 0;
        }
    }
    None
}

fn scan(name: &str, text: &str, leaks: &mut Vec<String>) {
    for secret in PLANTED {
        if text.contains(secret) {
            leaks.push(format!("{name}: contains {secret:?}"));
        }
    }
    if let Some(token) = token_shaped(text) {
        leaks.push(format!("{name}: contains a token-shaped string {}…", &token[..8]));
    }
}

fn scan_dir(dir: &Path, leaks: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("report dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scan_dir(&path, leaks);
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).expect("report file")).into_owned();
            scan(&path.display().to_string(), &text, leaks);
        }
    }
}

#[test]
fn no_secret_reaches_a_report_or_the_console() {
    let dir = std::env::temp_dir().join(format!("conform-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let common = ["run", "--cases", "8", "--target-cases", "16"];
    let clean = conform(&[&common[..], &["--report-dir", "clean"]].concat(), &dir);
    let faulty = conform(&[&common[..], &["--report-dir", "faulty", "--fault", "idor-get-escrow"]].concat(), &dir);
    assert_eq!(clean.status.code(), Some(0), "{}", String::from_utf8_lossy(&clean.stderr));
    assert_eq!(faulty.status.code(), Some(1), "the fault must be found, so that findings are written");
    assert!(dir.join("faulty/report.html").exists());
    let replay = conform(&["replay", "faulty/counterexample-target.json", "--fault", "idor-get-escrow"], &dir);
    let mut leaks = Vec::new();
    for (name, output) in [("clean run", &clean), ("faulty run", &faulty), ("replay", &replay)] {
        scan(&format!("{name} stdout"), &String::from_utf8_lossy(&output.stdout), &mut leaks);
        scan(&format!("{name} stderr"), &String::from_utf8_lossy(&output.stderr), &mut leaks);
    }
    scan_dir(&dir, &mut leaks);
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

/// The scanner itself finds what it looks for: a report holding a planted secret or a token is caught.
#[test]
fn the_scanner_finds_planted_secrets() {
    let mut leaks = Vec::new();
    scan("a", "webhook secret conform-rn-webhook-secret in a message", &mut leaks);
    scan("b", &format!("Bearer {}", "ab12".repeat(16)), &mut leaks);
    scan("c", "escrow 3f2a, version 7", &mut leaks);
    assert_eq!(leaks.len(), 2, "{leaks:?}");
}
