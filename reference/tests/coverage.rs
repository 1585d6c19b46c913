//! The default generator must reach every state and fire every row of the transition table: otherwise the
//! property suites silently test less than they claim.

use std::collections::BTreeMap;

use conform_reference::escrow::{EscrowState, TRANSITIONS};
use conform_reference::generate::{run_on_model, scenario};
use conform_reference::ids::Timestamp;
use conform_reference::world::{Config, World};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

#[test]
fn default_generator_reaches_every_state_and_transition() {
    let seed = [7u8; 32];
    let mut runner = TestRunner::new_with_rng(RunnerConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let strategy = scenario(1..120);
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rows: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let cases = 1024;
    for _ in 0..cases {
        let steps = strategy.new_tree(&mut runner).expect("generate a scenario").current();
        let mut world = World::new(Config::default(), Timestamp(1_700_000_000));
        run_on_model(&mut world, &steps, |world, _, _, _| {
            for (id, row) in world.last_transitions() {
                *rows.entry((row.rule, format!("{:?}", row.event))).or_default() += 1;
                let state = world.escrow(*id).map(|e| e.state.name()).unwrap_or("?");
                *states.entry(state).or_default() += 1;
            }
        });
    }
    println!("over {cases} scenarios (seed {seed:?}):");
    for (state, n) in &states {
        println!("  state {state:<17} reached {n} times");
    }
    for ((rule, event), n) in &rows {
        println!("  {rule:<6} {event:<22} fired {n} times");
    }
    let missing_states: Vec<_> = EscrowState::ALL.iter().filter(|s| !states.contains_key(s.name())).collect();
    assert!(missing_states.is_empty(), "states never reached: {missing_states:?}");
    let missing_rows: Vec<_> = TRANSITIONS
        .iter()
        .filter(|t| !rows.contains_key(&(t.rule, format!("{:?}", t.event))))
        .map(|t| (t.rule, t.event))
        .collect();
    assert!(missing_rows.is_empty(), "transitions never fired: {missing_rows:?}");
}
