//! The `conform` binary as a user meets it: exit statuses, the per-rule summary, reports on disk.

use std::path::Path;
use std::process::{Command, Output};

fn conform(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).args(args).current_dir(dir).output().expect("run conform")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn run_on_the_model_passes_and_reports_per_rule() {
    let dir = scratch("run");
    let out = conform(&["run", "--model-only", "--cases", "32", "--report-dir", "out"], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for rule in ["LED-1", "LED-10", "ESC-21", "ESC-22", "AZ-9", "PRV-4"] {
        assert!(stdout.lines().any(|l| l.starts_with(rule) && l.contains("passed")), "{rule} not passed:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("AZ-1 ") && l.contains("unverified")), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["seed"], 1);
    assert!(summary["rules"].as_array().is_some_and(|r| r.len() > 80));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let dir = scratch("seed");
    let a = conform(&["run", "--model-only", "--cases", "16", "--seed", "9", "--report-dir", "a"], &dir);
    let b = conform(&["run", "--model-only", "--cases", "16", "--seed", "9", "--report-dir", "b"], &dir);
    assert_eq!(b.status.code(), Some(0));
    assert_eq!(a.status.code(), Some(0));
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("summary");
    assert_eq!(read("a/summary.json"), read("b/summary.json"));
}

#[test]
fn nothing_ran_is_not_a_pass() {
    let dir = scratch("none");
    let out = conform(&["run", "--model-only", "--cases", "0", "--report-dir", "out"], &dir);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn an_unwritable_report_dir_is_a_usage_error_naming_it() {
    let dir = scratch("unwritable");
    std::fs::write(dir.join("file"), "not a directory").expect("file");
    let out = conform(&["run", "--model-only", "--cases", "1", "--report-dir", "file/reports"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("file/reports"), "{stderr}");
}

#[test]
fn unknown_flags_are_usage_errors() {
    let out = conform(&["run", "--casez", "1"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_fault_is_a_usage_error_listing_the_valid_ones() {
    let out = conform(&["run", "--fault", "no-such-fault"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-fault") && stderr.contains("release-race"), "{stderr}");
}
