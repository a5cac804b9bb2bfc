//! The daemon's side of the systemd service protocol (`sd_notify`): READY=1 once the models are
//! loaded and warmed up, WATCHDOG=1 from the main loop (so a hung pipeline is killed and restarted
//! by `WatchdogSec=`), STATUS= with the last verdict, STOPPING=1 when a stop was asked for while the
//! slice in hand is finished. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.
//!
//! Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once, in `Service::from_env`; touches
//! nothing but that datagram socket. A failed send is logged once and never stops the daemon: the
//! service manager, not the analysis, is what is missing then. See: issue 9, `sd_notify(3)`.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

/// STATUS= lines are sent at most this often (the watchdog ping carries a pending one sooner).
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the daemon tells the service manager.
pub struct Service {
    enabled: bool,
    /// Ping interval: half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)` advises.
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: Option<Instant>,
    pending_status: Option<String>,
    stopping_sent: bool,
    send_failed: bool,
}

impl Service {
    /// Reads the service manager's environment. Call once, at start-up.
    pub fn from_env() -> Service {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog_every = sd_notify::watchdog_enabled().filter(|_| enabled).map(|d| d / 2);
        if let Some(every) = watchdog_every {
            log::info!("systemd watchdog enabled: pinging every {} ms", every.as_millis());
        }
        Service {
            enabled,
            watchdog_every,
            last_ping: None,
            last_status: None,
            pending_status: None,
            stopping_sent: false,
            send_failed: false,
        }
    }

    /// Whether a service manager listens (`NOTIFY_SOCKET` set).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn send(&mut self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            if !self.send_failed {
                log::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}; carrying on without it");
                self.send_failed = true;
            }
        }
    }

    /// READY=1 with a first status: the models are loaded and warmed up, the drop folder watched.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        let now = Instant::now();
        self.last_ping = Some(now);
        self.last_status = Some(now);
    }

    /// Remembers a status line; it goes out with the next `tick` (at most once a second).
    pub fn set_status(&mut self, status: String) {
        if self.enabled {
            self.pending_status = Some(status);
        }
    }

    /// Sends a status line now (alerts and faults, which must not wait).
    pub fn status_now(&mut self, status: &str) {
        self.pending_status = None;
        self.send(&[NotifyState::Status(status)]);
        self.last_status = Some(Instant::now());
    }

    /// Called from the main loop and between slices: pings the watchdog when due, sends a pending
    /// status, and announces STOPPING=1 as soon as `stopping` is seen (the slice in hand is then
    /// finished before the loop ends).
    pub fn tick(&mut self, stopping: bool) {
        if !self.enabled {
            return;
        }
        if stopping {
            self.stopping("stopping: finishing the slice in hand");
        }
        let now = Instant::now();
        let due = |last: Option<Instant>, every: Duration| last.is_none_or(|t| now.duration_since(t) >= every);
        let ping = self.watchdog_every.is_some_and(|every| due(self.last_ping, every));
        let status = self.pending_status.is_some() && (ping || due(self.last_status, STATUS_EVERY));
        let pending = if status { self.pending_status.take() } else { None };
        match (ping, pending) {
            (true, Some(s)) => self.send(&[NotifyState::Watchdog, NotifyState::Status(&s)]),
            (true, None) => self.send(&[NotifyState::Watchdog]),
            (false, Some(s)) => self.send(&[NotifyState::Status(&s)]),
            (false, None) => {}
        }
        if ping {
            self.last_ping = Some(now);
        }
        if status {
            self.last_status = Some(now);
        }
    }

    /// STOPPING=1 (once) with a status line.
    pub fn stopping(&mut self, status: &str) {
        if self.stopping_sent {
            return;
        }
        self.stopping_sent = true;
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_service_manager_nothing_is_sent_and_nothing_fails() {
        // The unit tests run without NOTIFY_SOCKET (cargo does not set it): every call is a no-op.
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return;
        }
        let mut s = Service::from_env();
        assert!(!s.enabled());
        s.ready("ready");
        s.set_status("x".into());
        assert!(s.pending_status.is_none());
        s.tick(true);
        s.stopping("stopping");
        assert!(!s.send_failed);
    }
}
