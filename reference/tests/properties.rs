//! Property tests of the model: generated scenarios by generated actors, every rule of
//! [`conform_reference::model_suite::check_on_model`] checked after every request, shrunk to a short
//! counterexample on failure.

use conform_reference::generate::scenario;
use conform_reference::model_suite::{Coverage, check_on_model};
use proptest::prelude::*;

/// A fixed seed unless `PROPTEST_RNG_SEED` names another, so a run is repeatable; a failure is also saved in
/// `properties.proptest-regressions` and replayed first on every later run.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig { cases: 256, max_shrink_iters: 4096, ..ProptestConfig::default() };
    if config.rng_seed == proptest::test_runner::RngSeed::Random {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(0x00c0_ffee);
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_rule_holds_after_every_step(steps in scenario(1..120)) {
        let mut coverage = Coverage::default();
        if let Err(finding) = check_on_model(&steps, &mut coverage) {
            return Err(TestCaseError::fail(format!("{:?}: {}", finding.rules, finding.detail)));
        }
    }
}
