//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::exit::Exit;
use crate::run::RunOptions;
use crate::suites::model::GeneratedOptions;

const EXIT_STATUSES: &str = "\
Exit statuses:
  0  passed: every check that ran passed
  1  findings: at least one rule is broken (see the reports)
  2  usage or configuration error: a flag, profile, contract or input file is wrong; nothing ran
  3  target unreachable
  4  nothing ran: no case or check was selected";

/// conform: verification and conformance harness for escrow payment backends.
#[derive(Debug, Parser)]
#[command(name = "conform", version, after_help = EXIT_STATUSES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the suites and write reports.
    ///
    /// The model suite runs on the reference model alone (every invariant after every request); then, against the
    /// target, the property suite (generated scenarios, model and target side by side, the first difference shrunk
    /// and saved with its trace and seed) and the authorization-matrix suite (every operation × principal class).
    /// Without `--profile` the target is the embedded one, started in-process with the provider simulators.
    #[command(
        after_help = "Examples:\n  conform run\n  conform run --seed 7 --cases 500 --report-dir /tmp/conform\n  \
                            conform run --fault release-race      # the embedded target with a known defect\n  \
                            conform run --profile contracts/profiles/express.toml\n  \
                            conform run --profile contracts/profiles/embedded.toml --target-url http://127.0.0.1:8080 \\\n      \
                            --shkeeper-port 9100   # a target started separately, e.g. by `conform serve embedded`\n  \
                            conform run --tags authz,T01\n  \
                            conform run --model-only"
    )]
    Run(RunArgs),
    /// Re-run a saved counterexample against a target and show each step, expected against observed.
    #[command(after_help = "Examples:\n  conform replay reports/counterexample-target.json\n  \
                            conform replay reports/counterexample-target.json --fault idor-get-escrow\n  \
                            conform replay reports/counterexample-target.json --profile contracts/profiles/express.toml\n  \
                            conform replay reports/counterexample-model.json")]
    Replay(ReplayArgs),
    /// Prove the harness has teeth: every target suite against the embedded target, once clean and once per fault of
    /// its catalog; prints the detection table (time to detect, shortest reproduction) and writes
    /// `selftest.json` and `selftest.md`. Exits 0 only when the clean target shows nothing and every fault is caught
    /// under one of the rules it breaks.
    #[command(
        after_help = "Examples:\n  conform selftest\n  conform selftest --fault idor-get-escrow --fault release-race"
    )]
    Selftest(SelftestArgs),
    /// Run runbook drills (SPEC §8) against a test deployment, with their evidence: a timeline, time to detect,
    /// time to contain, funds lost.
    ///
    /// NAME is a drill of `drills/` (compiled in), `all`, or a path to a drill file (`….toml`). Drills refuse a
    /// profile whose environment is not `test` (exit 2).
    #[command(
        after_help = "Examples:\n  conform drill stuck-release\n  conform drill all --report-dir /tmp/drills\n  \
                            conform drill stuck-release --fault new-payout-key-on-retry\n  \
                            conform drill my-drill.toml --profile contracts/profiles/express.toml"
    )]
    Drill(DrillArgs),
    /// Print a shell completion script: `conform completions bash > /etc/bash_completion.d/conform`.
    #[command(
        after_help = "Examples:\n  conform completions bash > ~/.local/share/bash-completion/completions/conform\n  \
                            conform completions zsh > ~/.zfunc/_conform\n  conform completions fish > ~/.config/fish/completions/conform.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Run a payment provider simulator (SHKeeper or Request Network) for a backend to talk to, until Ctrl-C.
    ///
    /// It answers the provider's API and sends its signed callbacks; `--help` of each provider tells how to point
    /// a backend at it.
    #[command(subcommand)]
    Simulate(crate::simulate::SimulateCommand),
    /// Validate a profile (the binding of a target) and probe the target's capabilities.
    #[command(subcommand)]
    Profile(crate::profile::check::ProfileCommand),
    /// Run a target in the foreground until Ctrl-C: `conform serve embedded [--fault NAME]… [--test-mode]`.
    #[command(subcommand)]
    Serve(crate::serve::ServeCommand),
    /// Decide whether the target may launch, from a run's events and the launch criteria (SPEC §10).
    Gate(crate::gate::GateCommand),
}

/// Options of `conform run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Seed for all generation; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of generated scenarios on the model.
    #[arg(long, default_value_t = 256)]
    cases: u32,
    /// Scenarios against the target (each costs real HTTP requests).
    #[arg(long, default_value_t = 64)]
    target_cases: u32,
    /// Longest scenario, in steps.
    #[arg(long, default_value_t = 120)]
    max_steps: usize,
    /// Where reports are written (created if missing).
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Only the model: no target is started.
    #[arg(long, conflicts_with_all = ["profile", "faults", "target_url"])]
    model_only: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Only checks carrying one of these tags: areas (authz, escrow, ledger, sessions, webhooks, providers,
    /// realtime, …) or threat ids (T01 …); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Waivers for the launch decision the reports show (see contracts/waivers.example.toml).
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
}

/// Which target a command drives.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The target's profile; without it, the embedded target.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Start the embedded target with this named fault (repeatable; `conform serve embedded --list-faults`).
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
    /// The target already runs at this base URL: do not start it (overrides the profile's [launch]).
    #[arg(long, value_name = "URL")]
    target_url: Option<String>,
    /// Port of the SHKeeper simulator, for a target started separately and pointed at it (default: any free port).
    #[arg(long, default_value_t = 0)]
    shkeeper_port: u16,
    /// Port of the Request Network simulator, for a target started separately and pointed at it (default: any
    /// free port).
    #[arg(long, default_value_t = 0)]
    request_network_port: u16,
}

impl TargetArgs {
    fn options(&self, log_dir: PathBuf) -> Result<crate::suites::TargetOptions, Error> {
        let faults =
            conform_embedded::faults::FaultSet::parse(&self.faults).map_err(|e| Error::Usage(e.to_string()))?;
        Ok(crate::suites::TargetOptions {
            profile: self.profile.clone(),
            faults,
            running_at: self.target_url.clone(),
            shkeeper_port: self.shkeeper_port,
            request_network_port: self.request_network_port,
            log_dir,
        })
    }
}

/// Options of `conform selftest`.
#[derive(Debug, clap::Args)]
struct SelftestArgs {
    /// Seed for all generation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generated scenarios per run.
    #[arg(long, default_value_t = 64)]
    cases: u32,
    /// Longest scenario, in steps.
    #[arg(long, default_value_t = 120)]
    max_steps: usize,
    /// Only these faults (repeatable); default: the whole catalog.
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
    /// Where the table goes.
    #[arg(long, default_value = "reports/selftest")]
    report_dir: PathBuf,
    /// Runs at once (each with its own target); they mostly wait on sockets and deadlines.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
}

/// Options of `conform drill`.
#[derive(Debug, clap::Args)]
struct DrillArgs {
    /// A drill name, `all`, or a drill file.
    name: String,
    #[command(flatten)]
    target: TargetArgs,
    /// Where reports are written (created if missing).
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
}

/// Options of `conform replay`.
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// A `counterexample-*.json` written by `conform run`.
    file: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs the command line and returns the exit status.
pub fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Replay(args) => {
            args.target.options(std::env::temp_dir()).and_then(|target| crate::replay::replay(&args.file, &target))
        }
        Command::Selftest(args) => crate::selftest::selftest(&crate::selftest::SelftestOptions {
            generated: GeneratedOptions { seed: args.seed, cases: args.cases, max_steps: args.max_steps },
            faults: args.faults.clone(),
            report_dir: args.report_dir.clone(),
            jobs: args.jobs,
        }),
        Command::Drill(args) => args
            .target
            .options(args.report_dir.clone())
            .and_then(|target| crate::drill::command(&args.name, &target, &args.report_dir)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "conform", &mut std::io::stdout());
            Ok(Exit::Passed)
        }
        Command::Simulate(command) => return crate::simulate::run(command),
        Command::Profile(command) => return crate::profile::check::run(command),
        Command::Serve(command) => return crate::serve::run(command),
        Command::Gate(command) => return crate::gate::run(command),
    };
    result.unwrap_or_else(|error| {
        eprintln!("conform: {error}");
        error.exit()
    })
}

fn run(args: &RunArgs) -> Result<Exit, Error> {
    let model = GeneratedOptions { seed: args.seed, cases: args.cases, max_steps: args.max_steps };
    let target = (!args.model_only).then(|| args.target.options(args.report_dir.clone())).transpose()?;
    crate::run::run(&RunOptions {
        model,
        target_cases: args.target_cases,
        report_dir: args.report_dir.clone(),
        target,
        tags: args.tags.clone(),
        waivers: args.waivers.clone(),
    })
}
