//! Bringing a target up for a run, as its profile says: conform's embedded target in-process, a command started as
//! a child process (pointed at the provider simulators through its environment), a target already running, or a
//! container (refused where no Docker engine answers). Every wait is bounded; a target that does not come up fails
//! in seconds (or its readiness timeout) with a message saying so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conform_embedded::faults::FaultSet;
use conform_embedded::{RunningTarget, TargetConfig};

use crate::error::Error;
use crate::profile::Profile;
use crate::profile::model::LaunchMode;
use crate::profile::template::{Vars, render_str};
use crate::simulate::{RequestNetworkConfig, RequestNetworkSim, ShkeeperConfig, ShkeeperSim};

/// A readiness probe's single request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a target that is said to be running may take to answer its first probe.
const RUNNING_GRACE: Duration = Duration::from_secs(5);

/// The provider simulators a run starts for its target.
pub struct Simulators {
    /// SHKeeper: the target creates invoices and payouts on it; its callbacks are what the harness delivers.
    pub shkeeper: Arc<ShkeeperSim>,
    /// Request Network.
    pub request_network: Arc<RequestNetworkSim>,
}

impl Simulators {
    /// Starts both simulators, SHKeeper on `shkeeper_port` and Request Network on `request_network_port` (0: any
    /// free port), so that a separately started target can be pointed at them.
    pub async fn start(shkeeper_port: u16, request_network_port: u16) -> Result<Simulators, Error> {
        let config = ShkeeperConfig {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], shkeeper_port)),
            ..ShkeeperConfig::default()
        };
        let shkeeper = ShkeeperSim::start(config)
            .await
            .map_err(|e| Error::Usage(format!("cannot start the SHKeeper simulator on port {shkeeper_port}: {e}")))?;
        let config = RequestNetworkConfig {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], request_network_port)),
            ..RequestNetworkConfig::default()
        };
        let request_network = RequestNetworkSim::start(config).await.map_err(|e| {
            Error::Usage(format!("cannot start the Request Network simulator on port {request_network_port}: {e}"))
        })?;
        Ok(Simulators { shkeeper: Arc::new(shkeeper), request_network: Arc::new(request_network) })
    }
}

/// A target brought up for a run; dropping it stops what the run started.
pub struct Launched {
    /// The REST base URL the run talks to.
    pub http_url: String,
    /// The Socket.IO base URL.
    pub socketio_url: String,
    /// The in-process target, kept alive for the run.
    _embedded: Option<RunningTarget>,
    /// The started process, killed when the run ends.
    _child: Option<ChildGuard>,
}

impl Launched {
    fn at(http_url: String, socketio_url: String) -> Launched {
        Launched { http_url, socketio_url, _embedded: None, _child: None }
    }
}

/// Kills the child's whole process group on drop (a shell running `npm ci && node …` has children of its own).
struct ChildGuard {
    child: std::process::Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The child leads its own process group (see `spawn`): signal the group, then reap the leader.
        // `--` so that procps' kill reads `-PID` as a process group, not as an option.
        let _ = std::process::Command::new("kill").args(["-s", "TERM", "--", &format!("-{pid}")]).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).status();
        let _ = self.child.wait();
    }
}

/// Where and how to bring the target up.
pub struct LaunchRequest<'a> {
    /// The target's binding.
    pub profile: &'a Profile,
    /// The simulators the target must call.
    pub simulators: &'a Simulators,
    /// Faults for the embedded target (refused for any other).
    pub faults: &'a FaultSet,
    /// Overrides the launch mode: the target already runs at this URL.
    pub running_at: Option<&'a str>,
    /// Where the started target's output is written.
    pub log_dir: &'a Path,
}

/// Brings the target up and waits until it is ready.
pub async fn launch(request: LaunchRequest<'_>) -> Result<Launched, Error> {
    let profile = request.profile;
    if request.faults.iter().next().is_some() && request.running_at.is_some() {
        return Err(Error::Usage(
            "--fault applies to the embedded target conform starts, not to one already running (start it with \
             `conform serve embedded --fault NAME` instead)"
                .to_owned(),
        ));
    }
    if let Some(url) = request.running_at {
        let socketio = if profile.raw().target.socketio.is_some() { profile.socketio_url() } else { url };
        let readiness = profile.raw().launch.readiness.as_ref().map(|r| r.get_ref().clone());
        let (path, status) =
            readiness.as_ref().map_or(("/".to_owned(), None), |r| (r.path.get_ref().clone(), Some(r.status)));
        probe_until_ready(url, &path, status, RUNNING_GRACE, None).await?;
        return Ok(Launched::at(url.to_owned(), socketio.to_owned()));
    }
    if request.faults.iter().next().is_some() && profile.launch_mode() != LaunchMode::Embedded {
        return Err(Error::Usage(format!(
            "--fault switches on a defect of the embedded target; {} launches `{}` with mode = \"{}\"",
            profile.file_name(),
            profile.name(),
            profile.launch_mode().name()
        )));
    }
    match profile.launch_mode() {
        LaunchMode::Embedded => {
            let sims = request.simulators;
            let config = TargetConfig {
                faults: request.faults.clone(),
                test_mode: true,
                // As the profile declares it launched (its `capabilities.passkeys`): the model starts so too.
                passkeys_enabled: profile.capabilities().passkeys,
                shkeeper_url: Some(sims.shkeeper.base_url()),
                shkeeper_api_key: sims.shkeeper.config().api_key.clone(),
                request_network_url: Some(sims.request_network.base_url()),
                ..TargetConfig::default()
            };
            let target = conform_embedded::start(config)
                .await
                .map_err(|e| Error::Usage(format!("cannot start the embedded target: {e}")))?;
            let url = target.base_url();
            Ok(Launched { _embedded: Some(target), ..Launched::at(url.clone(), url) })
        }
        LaunchMode::Running => {
            let url = profile.http_url().to_owned();
            let readiness = profile.raw().launch.readiness.as_ref().map(|r| r.get_ref().clone());
            let (path, status) =
                readiness.as_ref().map_or(("/".to_owned(), None), |r| (r.path.get_ref().clone(), Some(r.status)));
            probe_until_ready(&url, &path, status, RUNNING_GRACE, None).await?;
            Ok(Launched::at(url, profile.socketio_url().to_owned()))
        }
        LaunchMode::Command => launch_command(profile, request.simulators, request.log_dir).await,
        LaunchMode::Container => Err(Error::Usage(format!(
            "{}: launch.mode = \"container\": {}",
            profile.file_name(),
            match crate::profile::check::docker_engine() {
                Err(why) => format!("no Docker engine reachable ({why}); use mode = \"command\" or \"running\""),
                Ok(at) => format!(
                    "a Docker engine answers at {at}, but starting containers is not supported yet; use mode = \"command\" or \"running\""
                ),
            }
        ))),
    }
}

/// A free port on the loopback interface, for a started target.
fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::Usage(format!("cannot find a free port for the target: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Usage(format!("cannot find a free port: {e}")))
}

async fn launch_command(profile: &Profile, sims: &Simulators, log_dir: &Path) -> Result<Launched, Error> {
    let launch = &profile.raw().launch;
    let file = profile.file_name();
    let port = free_port()?;
    let vars = Vars::new()
        .with("shkeeper_url", sims.shkeeper.base_url())
        .with("request_network_url", sims.request_network.base_url())
        .with("port", port.to_string());
    let render = |template: &str, field: &str| {
        render_str(template, &vars, false).map_err(|e| Error::Usage(format!("{file}: {field}: {e}")))
    };
    let program = launch
        .program
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("{file}: launch.program: required for mode = \"command\"")))?;
    let mut command = std::process::Command::new(program.get_ref());
    for (i, arg) in launch.args.iter().enumerate() {
        command.arg(render(arg.get_ref(), &format!("launch.args[{i}]"))?);
    }
    for (name, value) in &launch.env.0 {
        command.env(name, render(value.get_ref(), &format!("launch.env.{name}"))?);
    }
    let providers = &profile.raw().providers;
    if let Some(name) = &providers.shkeeper {
        command.env(name, sims.shkeeper.base_url());
    }
    if let Some(name) = &providers.request_network {
        command.env(name, sims.request_network.base_url());
    }
    let base = profile.dir().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let cwd = launch.cwd.as_ref().map_or(base.clone(), |cwd| base.join(cwd.get_ref()));
    let log_path = log_dir.join("target.log");
    let log =
        std::fs::File::create(&log_path).map_err(|source| Error::ReportWrite { path: log_path.clone(), source })?;
    let log_err = log.try_clone().map_err(|source| Error::ReportWrite { path: log_path.clone(), source })?;
    command.current_dir(&cwd).stdin(std::process::Stdio::null()).stdout(log).stderr(log_err);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().map_err(|e| {
        Error::Usage(format!("{file}: launch.program: cannot start {:?} in {}: {e}", program.get_ref(), cwd.display()))
    })?;
    let mut guard = ChildGuard { child };
    let http_url = render(profile.http_url(), "target.http")?;
    let socketio_url = render(profile.socketio_url(), "target.socketio")?;
    let readiness = launch.readiness.as_ref().map(|r| r.get_ref().clone());
    let (path, status, timeout) = readiness
        .as_ref()
        .map_or(("/".to_owned(), None, 30), |r| (r.path.get_ref().clone(), Some(r.status), r.timeout_seconds));
    probe_until_ready(&http_url, &path, status, Duration::from_secs(timeout), Some((&mut guard, &log_path))).await?;
    Ok(Launched { _child: Some(guard), ..Launched::at(http_url, socketio_url) })
}

/// GETs `base + path` until it answers `status` (any HTTP answer when the profile names no readiness probe), for at
/// most `limit`; a started child that exits first ends the wait with the tail of its log.
async fn probe_until_ready(
    base: &str,
    path: &str,
    status: Option<u16>,
    limit: Duration,
    mut child: Option<(&mut ChildGuard, &Path)>,
) -> Result<(), Error> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| Error::Usage(format!("cannot build the readiness probe's HTTP client: {e}")))?;
    let started = Instant::now();
    loop {
        let last = match client.get(&url).send().await {
            Ok(response) if status.is_none_or(|s| s == response.status().as_u16()) => return Ok(()),
            Ok(response) => format!("answered {} (waiting for {status:?})", response.status().as_u16()),
            Err(e) => format!("{e}"),
        };
        if let Some((guard, log)) = child.as_mut()
            && let Ok(Some(exit)) = guard.child.try_wait()
        {
            return Err(Error::TargetUnreachable(format!(
                "the target's command exited ({exit}) before {url} answered; last lines of {}:\n{}",
                log.display(),
                tail(log, 20)
            )));
        }
        if started.elapsed() >= limit {
            let log = child.map(|(_, log)| format!("; last lines of {}:\n{}", log.display(), tail(log, 20)));
            return Err(Error::TargetUnreachable(format!(
                "target is down: {url} did not answer within {} s ({last}){}",
                limit.as_secs(),
                log.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
