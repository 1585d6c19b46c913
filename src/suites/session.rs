//! A target brought up for a run, with everything the suites need to drive it: the async runtime, the provider
//! simulators, the launched process (or in-process target) and the profile-bound HTTP adapter.

use std::path::PathBuf;

use conform_embedded::faults::FaultSet;
use conform_reference::generate::{Abilities, Step};
use conform_reference::ledger::Provider;
use conform_reference::ops::OperationKind;

use crate::drive::http::{HttpConfig, HttpDriver};
use crate::error::Error;
use crate::launch::{LaunchRequest, Launched, Simulators, launch};
use crate::oracle::differential::{Differential, DifferentialRun, LedgerView, Target, run_differential};
use crate::oracle::http_target::HttpTarget;
use crate::profile::Profile;

/// The embedded target's profile, compiled in: `conform run` without `--profile`.
pub const EMBEDDED_PROFILE: &str = include_str!("../../contracts/profiles/embedded.toml");

/// Which target, and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// The profile file; `None` is the embedded target.
    pub profile: Option<PathBuf>,
    /// Faults for the embedded target.
    pub faults: FaultSet,
    /// The target already runs here (overrides the profile's launch).
    pub running_at: Option<String>,
    /// Port for the SHKeeper simulator (0: any), for a target started separately.
    pub shkeeper_port: u16,
    /// Port for the Request Network simulator (0: any), for a target started separately.
    pub request_network_port: u16,
    /// Where a started target's log goes.
    pub log_dir: PathBuf,
}

impl TargetOptions {
    /// Reads and validates the profile (before anything runs).
    pub fn load_profile(&self) -> Result<Profile, Error> {
        let profile = match &self.profile {
            None => Profile::parse("contracts/profiles/embedded.toml", EMBEDDED_PROFILE),
            Some(path) => Profile::load(path),
        };
        profile.map_err(|e| Error::Usage(e.to_string()))
    }
}

/// A running target and its driver. Fields drop in order: the adapter, the target, the simulators, the runtime.
pub struct Session {
    /// The profile-bound adapter.
    pub adapter: HttpTarget,
    /// The steps this target can follow.
    pub abilities: Abilities,
    /// Where it answers.
    pub launched: Launched,
    /// The provider simulators.
    pub simulators: Simulators,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    /// Brings the target up; `run_tag` makes this run's users and events unique on a target that outlives it.
    pub fn open(options: &TargetOptions, profile: Profile, run_tag: String) -> Result<Session, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
        let (simulators, launched) = runtime.block_on(async {
            let simulators = Simulators::start(options.shkeeper_port, options.request_network_port).await?;
            let launched = launch(LaunchRequest {
                profile: &profile,
                simulators: &simulators,
                faults: &options.faults,
                running_at: options.running_at.as_deref(),
                log_dir: &options.log_dir,
            })
            .await?;
            Ok::<_, Error>((simulators, launched))
        })?;
        let mut config = HttpConfig::new(launched.http_url.clone());
        config.csrf = profile.csrf();
        let http = HttpDriver::new(config).map_err(|e| Error::Usage(format!("cannot build the HTTP driver: {e}")))?;
        let key = simulators.shkeeper.config().api_key.clone();
        let abilities = abilities_of(&profile);
        let adapter = HttpTarget::new(profile, http, simulators.shkeeper.clone(), key, run_tag)
            .with_request_network(simulators.request_network.clone());
        Ok(Session { adapter, abilities, launched, simulators, runtime })
    }

    /// The target's profile.
    pub fn profile(&self) -> &Profile {
        self.adapter.profile()
    }

    /// Runs one scenario side by side on the model and the target.
    pub fn run_steps(&mut self, steps: &[Step]) -> DifferentialRun {
        self.runtime.block_on(run_differential(&mut self.adapter, steps, &self.abilities))
    }

    /// Starts a scenario to be taken one step at a time ([`Session::step`]), for suites that act between steps.
    pub fn begin(&mut self) -> Differential {
        self.runtime.block_on(Differential::begin(&mut self.adapter, &self.abilities))
    }

    /// Runs one step of a scenario begun with [`Session::begin`]; `false` once a finding has ended it.
    pub fn step(&mut self, differential: &mut Differential, step: &Step) -> bool {
        self.runtime.block_on(differential.step(&mut self.adapter, step))
    }

    /// The target's ledger for the current scenario, in the model's ids; `None` when the profile declares no
    /// ledger read.
    pub fn target_ledger(&mut self, model: &conform_reference::world::World) -> Option<Result<LedgerView, String>> {
        self.runtime.block_on(self.adapter.ledger(model))
    }

    /// Puts back what a check switched through `[fixtures.configure]` (passkeys as launched, every provider on):
    /// the suites share the target.
    pub fn restore_configuration(&mut self) -> Result<(), String> {
        self.runtime.block_on(self.adapter.restore_configuration())
    }

    /// Runs a future on the session's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// What a profile-bound target can be made to do: the test clock if it has one, SHKeeper escrows (the simulator
/// stands in for it) and manual-wallet escrows when proofs are bound; Request Network escrows are not generated
/// against targets yet. Passkeys start as the profile declares the target launched; they (and providers) can be
/// switched only through `[fixtures.configure]`, and generated scenarios never switch providers off: the suites
/// that need it allow it for their own scenarios.
pub fn abilities_of(profile: &Profile) -> Abilities {
    let mut providers = vec![Provider::Shkeeper];
    if profile.operation(OperationKind::SubmitPaymentProof).is_some() {
        providers.push(Provider::ManualWallet);
    }
    Abilities {
        clock: profile.capabilities().test_clock,
        switch_providers: false,
        providers,
        payout_callbacks: vec![Provider::Shkeeper],
        pending_callbacks: Vec::new(),
        passkeys: profile.capabilities().passkeys,
        switch_passkeys: profile.configure_route().is_some(),
    }
}
