//! The embedded target: a conforming implementation of the canonical contract (`contracts/openapi.yaml`,
//! `contracts/realtime.toml`), built from the reference model's parts, that can be started with any set of named
//! faults ([`faults`]). `conform run` starts it in-process on an ephemeral port; `conform serve embedded` runs it
//! alone.
//!
//! [`start`] binds 127.0.0.1, serves the REST API (module `http`) with the Socket.IO layer ([`realtime`]) on the same
//! port, and returns a [`RunningTarget`] that shuts the server down gracefully when dropped or on
//! [`RunningTarget::shutdown`]. The whole backend state sits behind one mutex, so a change of state and its ledger
//! entry are one atomic step (LED-8); provider calls happen outside it.

mod config;
pub mod faults;
mod http;
mod outbound;
mod passkeys;
pub mod realtime;
pub mod realtime_api;
mod state;
mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, oneshot};

pub use config::TargetConfig;
pub use util::{decode_base32, totp};

use crate::realtime_api::{RealtimeAuthority, RealtimeEvent};

/// Why the target could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port could not be bound.
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP client for provider calls could not be built.
    #[error("cannot build the provider HTTP client: {0}")]
    Client(String),
}

/// A running embedded target.
pub struct RunningTarget {
    /// The address it listens on.
    pub addr: SocketAddr,
    events: broadcast::Sender<RealtimeEvent>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningTarget {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The channel the backend announces realtime events on (a new receiver sees every later event).
    pub fn events(&self) -> broadcast::Sender<RealtimeEvent> {
        self.events.clone()
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the server to end (at most 5
    /// seconds: long-lived connections such as open sockets are then cut).
    pub async fn shutdown(mut self) {
        self.signal();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(std::time::Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }

    fn signal(&self) {
        let sender = self.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

impl Drop for RunningTarget {
    fn drop(&mut self) {
        self.signal();
    }
}

/// The backend's router and what the realtime layer needs, without binding: for a caller that serves it itself.
pub struct Backend {
    /// The REST API.
    pub router: axum::Router,
    /// Who tokens belong to and who may see an escrow.
    pub authority: Arc<dyn RealtimeAuthority>,
    /// Where the backend announces changes.
    pub events: broadcast::Sender<RealtimeEvent>,
}

/// Builds the backend; `callback_base` is the URL providers call back (`http://host:port`).
pub fn backend(config: TargetConfig, callback_base: String) -> Result<Backend, StartError> {
    let (events, _) = broadcast::channel(1024);
    let http = reqwest::Client::builder()
        .timeout(config.provider_timeout)
        .connect_timeout(config.provider_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StartError::Client(e.to_string()))?;
    let shared = Arc::new(state::Shared {
        faults: config.faults.clone(),
        state: Mutex::new(state::State::new(config.clone(), events.clone())),
        http,
        callback_base,
        cfg: config,
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&shared);
        runtime.spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let Some(app) = weak.upgrade() else { break };
                http::tick(&app);
            }
        });
    }
    let authority: Arc<dyn RealtimeAuthority> = Arc::new(state::Authority(shared.clone()));
    Ok(Backend { router: http::router(shared), authority, events })
}

/// Starts the target on 127.0.0.1:`config.port` (0: an ephemeral port), REST and Socket.IO on the same port.
pub async fn start(config: TargetConfig) -> Result<RunningTarget, StartError> {
    let port = config.port;
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|source| StartError::Bind { port, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { port, source })?;
    let callback_base = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let faults = config.faults.clone();
    let backend = backend(config, callback_base)?;
    let layer = realtime::layer(backend.authority.clone(), backend.events.clone(), faults);
    let app = backend.router.layer(layer);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningTarget { addr, events: backend.events, shutdown: Mutex::new(Some(tx)), task: Some(task) })
}
