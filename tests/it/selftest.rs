//! The harness's teeth, in CI: every target suite against the embedded target, clean and with each fault of the
//! catalog (seed 1, 32 scenarios). Clean must show nothing; every fault must be found under one of the rules it
//! breaks, with its time to detection and shortest reproduction recorded. A fault added to the catalog that no suite
//! catches fails this test.

use conform::selftest::{SelftestOptions, selftest_lines};
use conform::suites::model::GeneratedOptions;
use conform_embedded::faults::CATALOG;

#[test]
fn the_clean_target_shows_nothing_and_every_fault_is_caught() {
    let dir = std::env::temp_dir().join(format!("conform-selftest-{}", std::process::id()));
    let options = SelftestOptions {
        generated: GeneratedOptions { seed: 1, cases: 32, max_steps: 120 },
        faults: Vec::new(),
        report_dir: dir.clone(),
        jobs: 4,
    };
    let lines = selftest_lines(&options).expect("the selftest runs");
    let clean = &lines[0];
    assert_eq!(clean.fault, "clean");
    assert!(!clean.found, "the clean target has findings: {:?}", clean.failed_checks);
    let table = std::fs::read_to_string(dir.join("selftest.md")).expect("the table is written");
    for info in CATALOG {
        let line = lines.iter().find(|l| l.fault == info.name).expect("every fault is run");
        assert!(line.as_expected, "{} is not caught under the rules it breaks ({:?})\n{table}", info.name, info.rules);
        assert!(line.time_to_detect_ms.is_some() && line.shortest_reproduction.is_some(), "{}\n{table}", info.name);
    }
}
