//! Differential throughput against the embedded target: the same recorded scenarios run side by side on the model
//! and the target (over real HTTP, the target's ledger read and every invariant checked after each request), and,
//! as the baseline of the same run, with the model itself standing in for the target. Prints requests a second for
//! both arms and their ratio. `cargo bench --bench differential` (aim: at least 2,000 requests a second against the
//! target on a 2-core machine).

#![allow(clippy::float_arithmetic)] // rates for a person to read, not money

use std::time::Instant;

use conform::oracle::differential::{ModelTarget, run_differential};
use conform::suites::{Session, TargetOptions, runner};
use conform_reference::generate::{Step, scenario};
use proptest::strategy::{Strategy, ValueTree};

fn main() {
    let mut runner = runner(7, 1, 0);
    let strategy = scenario(20..120);
    let scenarios: Vec<Vec<Step>> =
        (0..200).map(|_| strategy.new_tree(&mut runner).expect("scenario").current()).collect();
    let options = TargetOptions { log_dir: std::env::temp_dir(), ..TargetOptions::default() };
    let profile = options.load_profile().expect("the embedded profile");
    let mut session = Session::open(&options, profile, format!("bench{}", std::process::id())).expect("target");

    let started = Instant::now();
    let mut target_requests = 0;
    for steps in &scenarios {
        let run = session.run_steps(steps);
        assert!(run.finding.is_none(), "the clean target differs: {:?}", run.finding);
        target_requests += run.requests;
    }
    let target_seconds = started.elapsed().as_secs_f64();

    let abilities = session.abilities.clone();
    let started = Instant::now();
    let mut model_requests = 0;
    for steps in &scenarios {
        let run = session.block_on(run_differential(&mut ModelTarget::default(), steps, &abilities));
        model_requests += run.requests;
    }
    let model_seconds = started.elapsed().as_secs_f64();

    let target_rate = target_requests as f64 / target_seconds;
    let model_rate = model_requests as f64 / model_seconds;
    println!(
        "differential, model beside the embedded target: {target_requests} requests in {target_seconds:.2} s = {target_rate:.0} requests/s"
    );
    println!(
        "differential, model beside itself (baseline):   {model_requests} requests in {model_seconds:.2} s = {model_rate:.0} requests/s"
    );
    println!("ratio baseline : target = {:.1} : 1", model_rate / target_rate);
}
