//! Model throughput: requests a second through `World::apply`, without and with every invariant of the registry
//! checked after each request. Ratios between the two, taken in one run, are what to compare across changes.

use conform_reference::generate::{run_on_model, scenario};
use conform_reference::ids::Timestamp;
use conform_reference::invariants::Checker;
use conform_reference::world::{Config, Request, World};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

/// Fixed scenarios, resolved once into plain request lists by a model run, so that the benchmark measures the
/// model and not the generator.
fn recorded_requests() -> Vec<Vec<Request>> {
    let mut runner =
        TestRunner::new_with_rng(RunnerConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]));
    let strategy = scenario(40..120);
    (0..200)
        .map(|_| {
            let steps = strategy.new_tree(&mut runner).expect("scenario").current();
            let mut world = World::new(Config::default(), Timestamp(1_700_000_000));
            let mut requests = Vec::new();
            run_on_model(&mut world, &steps, |_, _, request, _| requests.push(request.clone()));
            requests
        })
        .collect()
}

fn model(c: &mut Criterion) {
    let runs = recorded_requests();
    let total: usize = runs.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("apply", |b| {
        b.iter(|| {
            for requests in &runs {
                let mut world = World::new(Config::default(), Timestamp(1_700_000_000));
                for request in requests {
                    std::hint::black_box(world.apply(request)).ok();
                }
            }
        })
    });
    group.bench_function("apply+invariants", |b| {
        b.iter(|| {
            for requests in &runs {
                let mut world = World::new(Config::default(), Timestamp(1_700_000_000));
                let mut checker = Checker::new();
                for request in requests {
                    std::hint::black_box(world.apply(request)).ok();
                    let violations = world.observe(|obs| checker.step(obs));
                    assert!(violations.is_empty(), "{violations:?}");
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
