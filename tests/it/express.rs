//! The TypeScript target (targets/express), bound only by its own profile: `conform run --profile` installs it with
//! npm ci, starts it through the profile's launch command, runs every target suite against it, and must pass.

use std::path::Path;
use std::process::Command;

#[test]
fn the_typescript_target_passes_through_its_own_profile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = std::env::temp_dir().join(format!("conform-express-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["run", "--profile", "contracts/profiles/express.toml", "--cases", "16", "--target-cases", "32"])
        .arg("--report-dir")
        .arg(&reports)
        .current_dir(root)
        .output()
        .expect("run conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(reports.join("target.log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}\n--- target.log ---\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["target"], "express");
    let rules = summary["rules"].as_array().expect("rules");
    let passed = rules.iter().filter(|r| r["result"] == "passed").count();
    assert!(passed >= 50, "only {passed} rules passed against the TypeScript target");
}
