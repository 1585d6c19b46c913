//! The oracle against the embedded target over real HTTP: the clean target agrees with the model on generated
//! scenarios, and a target with a fault is caught with the rule the fault breaks.

use std::sync::Arc;

use conform::drive::http::{HttpConfig, HttpDriver};
use conform::oracle::differential::run_differential;
use conform::oracle::http_target::HttpTarget;
use conform::profile::Profile;
use conform::simulate::{ShkeeperConfig, ShkeeperSim};
use conform_embedded::TargetConfig;
use conform_embedded::faults::{Fault, FaultSet};
use conform_reference::generate::{Abilities, EscrowAct, Step, Who, scenario};
use conform_reference::ledger::Provider;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

fn abilities() -> Abilities {
    Abilities {
        clock: true,
        switch_providers: false,
        providers: vec![Provider::Shkeeper, Provider::ManualWallet],
        payout_callbacks: vec![Provider::Shkeeper],
        pending_callbacks: Vec::new(),
        // The target below is started with passkeys off; generated scenarios never switch them.
        passkeys: false,
        switch_passkeys: false,
    }
}

async fn target(faults: FaultSet) -> (conform_embedded::RunningTarget, Arc<ShkeeperSim>, HttpTarget) {
    let sim = Arc::new(ShkeeperSim::start(ShkeeperConfig::default()).await.expect("simulator"));
    let config = TargetConfig {
        faults,
        test_mode: true,
        shkeeper_url: Some(sim.base_url()),
        shkeeper_api_key: sim.config().api_key.clone(),
        ..TargetConfig::default()
    };
    let running = conform_embedded::start(config).await.expect("embedded target");
    let profile =
        Profile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/profiles/embedded.toml")).expect("profile");
    let http = HttpDriver::new(HttpConfig::new(running.base_url())).expect("driver");
    let key = sim.config().api_key.clone();
    let adapter = HttpTarget::new(profile, http, sim.clone(), key, format!("run{}", std::process::id()));
    (running, sim, adapter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_embedded_target_agrees_with_the_model() {
    let (_running, _sim, mut adapter) = target(FaultSet::none()).await;
    let mut runner =
        TestRunner::new_with_rng(RunnerConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]));
    let strategy = scenario(30..120);
    let mut requests = 0;
    let mut unknown = 0;
    for case in 0..40 {
        let steps = strategy.new_tree(&mut runner).expect("scenario").current();
        let run = run_differential(&mut adapter, &steps, &abilities()).await;
        requests += run.requests;
        if run.finding.is_some() {
            for exchange in run.trace.iter().rev().take(12).rev() {
                println!(
                    "{:?}\n   model: {}\n   target: {:?}",
                    exchange.request.op, exchange.predicted, exchange.observed
                );
            }
        }
        assert!(run.finding.is_none(), "case {case}: {:#?}\nunknown: {:?}", run.finding, run.unknown);
        unknown += run.unknown.len();
    }
    println!("{requests} requests, {unknown} without an outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_level_check_missing_is_caught() {
    let (_running, _sim, mut adapter) = target(FaultSet::of([Fault::IdorGetEscrow])).await;
    let steps = [
        Step::Create { buyer: 0, seller: 1, major: 5, currency: 0, provider: Provider::Shkeeper, extra: None },
        Step::Act { escrow: 0, who: Who::Stranger, act: EscrowAct::Get },
    ];
    let run = run_differential(&mut adapter, &steps, &abilities()).await;
    let finding = run.finding.expect("the fault is caught");
    assert!(finding.difference.rules.contains(&"AZ-2"), "{finding:?}");
}
