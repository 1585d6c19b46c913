//! `conform serve`: runs a target in the foreground, for a person or another tool to test by hand.

use clap::{Args, Subcommand};
use conform_embedded::TargetConfig;
use conform_embedded::faults::{CATALOG, FaultSet};

use crate::exit::Exit;

/// What to serve.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// The embedded target: a conforming backend built on the reference model, with named faults on demand.
    #[command(after_help = "Examples:\n  conform serve embedded --port 8080 --test-mode\n  conform serve embedded \
                            --test-mode --fault release-race --fault idor-get-escrow\n  conform serve embedded \
                            --list-faults")]
    Embedded(EmbeddedArgs),
}

/// Options of `conform serve embedded`.
#[derive(Debug, Args)]
pub struct EmbeddedArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A named defect to switch on (repeatable); `--list-faults` lists them.
    #[arg(long = "fault", value_name = "NAME")]
    pub faults: Vec<String>,
    /// Expose the test-only routes (`/v1/test/users`, `/v1/test/clock`).
    #[arg(long)]
    pub test_mode: bool,
    /// Print every fault with the rules it breaks and the threats it opens, then exit.
    #[arg(long)]
    pub list_faults: bool,
    /// Switch the passkey routes on (SES-8; relying party id `localhost`, so origins are `http://localhost:PORT`).
    #[arg(long)]
    pub passkeys: bool,
    /// The SHKeeper API base URL (e.g. a `conform simulate shkeeper`); without it SHKeeper calls fail with 503.
    #[arg(long, value_name = "URL")]
    pub shkeeper_url: Option<String>,
    /// The Request Network API base URL; without it Request Network calls fail with 503.
    #[arg(long, value_name = "URL")]
    pub request_network_url: Option<String>,
}

/// Runs `conform serve`.
pub fn run(command: ServeCommand) -> Exit {
    let ServeCommand::Embedded(args) = command;
    if args.list_faults {
        for info in CATALOG {
            println!("{:<34} rules {:<22} threats {}", info.name, info.rules.join(","), info.threats.join(","));
            println!("    {}", info.summary);
        }
        return Exit::Passed;
    }
    let faults = match FaultSet::parse(&args.faults) {
        Ok(faults) => faults,
        Err(e) => {
            eprintln!("conform serve: {e}");
            return Exit::Usage;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("conform serve: cannot start the async runtime: {e}");
            return Exit::Usage;
        }
    };
    runtime.block_on(async move {
        let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        let config = TargetConfig {
            port: args.port,
            faults,
            test_mode: args.test_mode,
            passkeys_enabled: args.passkeys,
            shkeeper_url: args.shkeeper_url,
            request_network_url: args.request_network_url,
            ..TargetConfig::default()
        };
        match conform_embedded::start(config).await {
            Ok(target) => {
                println!("{}", target.base_url());
                let faults = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                eprintln!(
                    "embedded target on {}  faults: {faults}  test mode: {}; Ctrl-C stops",
                    target.base_url(),
                    args.test_mode
                );
                let _keep = target;
                std::future::pending::<Exit>().await
            }
            Err(e) => {
                eprintln!("conform serve: {e}");
                Exit::TargetUnreachable
            }
        }
    })
}
