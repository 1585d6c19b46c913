//! `conform profile check FILE`: validate a profile, then probe the target's capabilities.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use conform_reference::ops::OperationKind;

use super::{LaunchMode, Profile};
use crate::exit::Exit;

/// The time any single probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `conform profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Validate a profile (errors name the file, line and field), then probe the target's capabilities.
    ///
    /// With mode = "running" the target is probed at its base URL (2 s per request): an unreachable target exits
    /// with status 3. With --offline only the file is checked.
    #[command(
        after_help = "Examples:\n  conform profile check contracts/profiles/embedded.toml\n  conform profile check my-backend.toml --offline"
    )]
    Check {
        /// The profile file.
        file: PathBuf,
        /// Check the file only; do not contact the target.
        #[arg(long)]
        offline: bool,
    },
}

/// Runs a `profile` subcommand and returns its exit status.
pub fn run(command: ProfileCommand) -> Exit {
    match command {
        ProfileCommand::Check { file, offline } => check(&file, offline),
    }
}

/// One line of the capability table.
struct Probe {
    capability: &'static str,
    probed: String,
    /// A declared capability the target does not have.
    contradicts: bool,
}

fn check(file: &std::path::Path, offline: bool) -> Exit {
    let profile = match Profile::load(file) {
        Ok(profile) => profile,
        Err(error) => {
            eprintln!("conform: {error}");
            return Exit::Usage;
        }
    };
    let bound = OperationKind::ALL.iter().filter(|op| profile.operation(**op).is_some()).count();
    println!("profile {}: valid", profile.file_name());
    println!("  target       {} ({})", profile.name(), profile.environment().name());
    println!("  base URL     {}", profile.http_url());
    println!("  launch       {}", profile.launch_mode().name());
    println!("  operations   {bound} bound, {} unsupported", OperationKind::ALL.len() - bound);
    for op in OperationKind::ALL {
        if let Some(reason) = profile.unsupported_reason(*op) {
            println!("    unsupported {}: {reason}", op.name());
        }
    }

    let probes = match profile.launch_mode() {
        LaunchMode::Container => {
            let message = match docker_engine() {
                Err(why) => format!("no Docker engine reachable ({why}); use mode = \"command\" or \"running\""),
                Ok(at) => format!(
                    "a Docker engine answers at {at}, but starting containers is not supported yet; use mode = \"command\" or \"running\""
                ),
            };
            eprintln!("conform: {}: launch.mode = \"container\": {message}", profile.file_name());
            return Exit::Usage;
        }
        LaunchMode::Embedded => {
            println!("  the embedded target is started in-process by `conform run`; probe: not started");
            None
        }
        LaunchMode::Command => {
            for warning in command_warnings(&profile) {
                println!("  warning      {warning}");
            }
            println!("  the target is started by `conform run` with its command; probe: not started");
            None
        }
        LaunchMode::Running if offline => {
            println!("  probe: skipped (--offline)");
            None
        }
        LaunchMode::Running => match probe_running(&profile) {
            Ok(probes) => Some(probes),
            Err(message) => {
                eprintln!("conform: {message}");
                return Exit::TargetUnreachable;
            }
        },
    };

    println!();
    println!("{:<14} {:<9} probed", "capability", "declared");
    let mut contradictions = 0;
    for (name, declared) in profile.capabilities().iter() {
        let probe = probes.as_ref().and_then(|p| p.iter().find(|p| p.capability == name));
        let probed = probe.map_or("-", |p| p.probed.as_str());
        let mark = if probe.is_some_and(|p| p.contradicts) {
            contradictions += 1;
            "  <- declared but absent"
        } else {
            ""
        };
        println!("{name:<14} {:<9} {probed}{mark}", if declared { "yes" } else { "no" });
    }
    if contradictions > 0 {
        eprintln!(
            "conform: {}: {contradictions} declared capabilit{} not offered by the target (fix [capabilities] or the target)",
            profile.file_name(),
            if contradictions == 1 { "y is" } else { "ies are" }
        );
        return Exit::Usage;
    }
    Exit::Passed
}

/// What would stop `conform run` from starting a `command` target: a missing working directory or program.
fn command_warnings(profile: &Profile) -> Vec<String> {
    let launch = &profile.raw().launch;
    let base = profile.dir().map(std::path::Path::to_owned).unwrap_or_default();
    let cwd = launch.cwd.as_ref().map_or_else(|| base.clone(), |cwd| base.join(cwd.get_ref()));
    let mut warnings = Vec::new();
    if !cwd.is_dir() {
        warnings.push(format!("launch.cwd: {} is not a directory here", cwd.display()));
    }
    if let Some(program) = &launch.program {
        let program = program.get_ref();
        let found = if program.contains('/') {
            cwd.join(program).is_file()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        };
        if !found {
            warnings.push(format!(
                "launch.program: {program:?} is not found (on PATH, or relative to the working directory)"
            ));
        }
    }
    warnings
}

/// Connects to the Docker engine's socket (`$DOCKER_HOST` or `/var/run/docker.sock`) within 2 s.
pub(crate) fn docker_engine() -> Result<String, String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    let runtime = runtime().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        if let Some(path) = host.strip_prefix("unix://") {
            #[cfg(unix)]
            {
                match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await {
                    Ok(Ok(_)) => Ok(host.clone()),
                    Ok(Err(e)) => Err(format!("{host}: {e}")),
                    Err(_) => Err(format!("{host}: no answer within 2 s")),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = path;
                Err(format!("{host}: Unix sockets are not available on this platform"))
            }
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(host.clone()),
                Ok(Err(e)) => Err(format!("{host}: {e}")),
                Err(_) => Err(format!("{host}: no answer within 2 s")),
            }
        } else {
            Err(format!("DOCKER_HOST={host} is neither unix:// nor tcp://"))
        }
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Probes a running target: first that it answers at all, then each capability's route. A route answering 404 or
/// 405 is absent; any other answer (401 and 403 included: the route exists behind authentication) is present.
fn probe_running(profile: &Profile) -> Result<Vec<Probe>, String> {
    let base = profile.http_url().trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let runtime = runtime().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (ready_path, ready_status) = match &profile.raw().launch.readiness {
            Some(r) => (r.get_ref().path.get_ref().clone(), Some(r.get_ref().status)),
            None => ("/".to_owned(), None),
        };
        let url = format!("{base}{ready_path}");
        match client.get(&url).send().await {
            Err(e) => {
                let why = if e.is_timeout() { "no answer within 2 s".to_owned() } else { root_cause(&e) };
                return Err(format!("target is down: unreachable at {url} ({why}); start it, or fix [target].http"));
            }
            Ok(response) => {
                let status = response.status().as_u16();
                println!("  probe        GET {url} -> {status}");
                if let Some(expected) = ready_status
                    && status != expected
                {
                    println!("  warning      readiness expects {expected}, the target answered {status}");
                }
            }
        }
        let route = |op: OperationKind| profile.operation(op).map(|b| (b.method.clone(), b.path.clone()));
        let fixture = profile.create_user_route().map(|b| (b.method, b.path));
        let clock = profile.clock_route().map(|b| (b.method, b.path));
        let targets: [(&'static str, Option<(String, String)>); 6] = [
            ("ledger_read", route(OperationKind::ReadLedger)),
            ("dead_letters", route(OperationKind::ListDeadLetters)),
            ("audit_log", route(OperationKind::ReadAuditLog)),
            ("test_clock", clock),
            ("passkeys", route(OperationKind::PasskeySignInOptions)),
            ("fixtures", fixture),
        ];
        let declared = profile.capabilities();
        let mut probes = Vec::new();
        for (capability, target) in targets {
            let is_declared = declared.iter().iter().any(|(n, d)| *n == capability && *d);
            let probed = match target {
                None => "no route".to_owned(),
                Some((_, path)) if path.contains('{') => "- (route needs variables)".to_owned(),
                Some((method, path)) => {
                    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
                    let mut request = client.request(method.clone(), format!("{base}{path}"));
                    if method != reqwest::Method::GET {
                        // An empty object: enough to tell a route from a 404, never a valid fixture or clock change.
                        request = request.json(&serde_json::json!({}));
                    }
                    match request.send().await {
                        Ok(r) if matches!(r.status().as_u16(), 404 | 405) => {
                            format!("absent ({} {path} -> {})", method, r.status().as_u16())
                        }
                        Ok(r) => format!("present ({} {path} -> {})", method, r.status().as_u16()),
                        Err(e) => format!("unknown ({})", root_cause(&e)),
                    }
                }
            };
            let contradicts = is_declared && probed.starts_with("absent");
            probes.push(Probe { capability, probed, contradicts });
        }
        Ok(probes)
    })
}

/// The innermost cause of an error, which says what failed ("Connection refused").
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
