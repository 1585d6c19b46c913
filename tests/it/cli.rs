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
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["seed"], 1);
    let rules = summary["rules"].as_array().expect("rules");
    assert!(rules.len() > 80);
    let result = |id: &str| rules.iter().find(|r| r["id"] == id).map(|r| r["result"].clone()).expect(id);
    // The model alone is the oracle, not a target: what it goes through is exercised, never passed.
    for rule in ["LED-1", "LED-10", "ESC-21", "ESC-22", "AZ-9", "PRV-4"] {
        assert_eq!(result(rule), "exercised", "{rule}");
    }
    assert_eq!(result("AZ-1"), "unverified");
    for file in ["events.jsonl", "junit.xml", "summary.md", "report.html"] {
        assert!(dir.join("out").join(file).exists(), "{file} not written");
    }
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

/// A separately started `conform serve embedded`, driven through the embedded profile with `--target-url`, gets the
/// same verdict on every rule as the target `conform run` starts in-process.
#[test]
fn a_separately_started_target_gets_the_same_verdicts_as_the_in_process_one() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("attach");
    let sim_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let rn_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["serve", "embedded", "--port", "0", "--test-mode"])
        .args(["--shkeeper-url", &format!("http://127.0.0.1:{sim_port}")])
        .args(["--request-network-url", &format!("http://127.0.0.1:{rn_port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut url = String::new();
    BufReader::new(serve.stdout.take().expect("stdout")).read_line(&mut url).expect("the served URL");
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/profiles/embedded.toml");
    let common = ["run", "--cases", "8", "--target-cases", "16", "--seed", "3"];
    let attached = conform(
        &[
            &common[..],
            &["--report-dir", "attached", "--profile", profile.to_str().expect("path"), "--target-url", url.trim()],
            &["--shkeeper-port", &sim_port.to_string(), "--request-network-port", &rn_port.to_string()],
        ]
        .concat(),
        &dir,
    );
    let _ = serve.kill();
    let _ = serve.wait();
    let in_process = conform(&[&common[..], &["--report-dir", "in-process"]].concat(), &dir);
    assert_eq!(attached.status.code(), Some(0), "{}", String::from_utf8_lossy(&attached.stderr));
    assert_eq!(in_process.status.code(), Some(0), "{}", String::from_utf8_lossy(&in_process.stderr));
    let verdicts = |report: &str| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(dir.join(report).join("summary.json")).expect("summary");
        let summary: serde_json::Value = serde_json::from_str(&text).expect("json");
        summary["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                (r["id"].as_str().unwrap_or_default().to_owned(), r["result"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    assert_eq!(verdicts("attached"), verdicts("in-process"));
    assert!(verdicts("attached").iter().any(|(_, result)| result == "passed"));
}

/// A target that is down fails the run in seconds, with exit status 3 and a message saying so.
#[test]
fn a_target_that_is_down_fails_in_seconds() {
    let dir = scratch("down");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let started = std::time::Instant::now();
    let out = conform(
        &["run", "--cases", "1", "--report-dir", "out", "--target-url", &format!("http://127.0.0.1:{port}")],
        &dir,
    );
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target is down"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn shell_completions_name_every_command() {
    let dir = scratch("completions");
    for shell in ["bash", "zsh", "fish"] {
        let out = conform(&["completions", shell], &dir);
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["run", "replay", "selftest", "gate", "drill", "serve", "simulate", "profile"] {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
    assert_eq!(conform(&["completions", "tcsh"], &dir).status.code(), Some(2));
}

/// Unknown tags are refused before anything runs, with the list of known ones.
#[test]
fn unknown_tags_are_a_usage_error() {
    let dir = scratch("tags");
    let out =
        conform(&["run", "--model-only", "--cases", "1", "--tags", "authz,nonsense", "--report-dir", "out"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown tag `nonsense`") && stderr.contains("authz"), "{stderr}");
    assert!(!dir.join("out/events.jsonl").exists(), "nothing may run");
}

/// A malformed counterexample file is refused with the file and where it breaks.
#[test]
fn a_malformed_replay_file_is_a_usage_error_naming_it() {
    let dir = scratch("replay");
    std::fs::write(dir.join("bad.json"), "{\"kind\": \"target\", \"seed\": 1, \"steps\": [{\"fly\": {}}]}")
        .expect("file");
    let out = conform(&["replay", "bad.json"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json:1:") && stderr.contains("not a conform counterexample"), "{stderr}");
}

/// Issue 6's promise, end to end: the main job against the embedded target, then the gate on its reports — launch
/// may go ahead on the clean target, and is refused when the target carries a fault.
#[test]
fn the_gate_passes_the_clean_embedded_target_and_refuses_a_faulty_one() {
    let dir = scratch("gate-end-to-end");
    let criteria = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/launch-criteria.toml");
    let criteria = criteria.to_str().expect("utf-8 path");
    for (label, fault, expected) in [("clean", None, 0), ("faulty", Some("release-after-refund"), 1)] {
        let mut args = vec!["run", "--cases", "8", "--target-cases", "16", "--report-dir", label];
        args.extend(fault.iter().flat_map(|f| ["--fault", *f]));
        let run = conform(&args, &dir);
        assert_eq!(run.status.code(), Some(expected), "{label}: {}", String::from_utf8_lossy(&run.stdout));
        let gate = conform(&["gate", "--criteria", criteria, "--report-dir", label], &dir);
        let stdout = String::from_utf8_lossy(&gate.stdout);
        assert_eq!(gate.status.code(), Some(expected), "{label}: {stdout}");
        let verdict = if expected == 0 { "launch may go ahead" } else { "launch refused" };
        assert!(stdout.contains(verdict), "{label}: {stdout}");
    }
}
