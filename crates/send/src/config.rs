//! `[dicom.send]` of the board profile: where results go (the PACS's AE title, host and port), who
//! we are (our calling AE title), which series verdicts are sent, and the bounds of the queue
//! (retry backoff, attempts before a refused object is parked, outbox size), and `[dicom.send.tls]`
//! (the PEM files for DICOM over TLS; read by `crate::tls`). Parsed by the
//! analyser (which writes the outbox) and by the sender (which empties it), from the same table.
//! Touches nothing but the text it is given (and, in [`SenderProfile::load`], the one file).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[dicom.send]` table. Every key but `peer_ae`, `host` and `port` has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendConfig {
    /// The PACS's AE title (the called AE of our associations).
    pub peer_ae: String,
    /// The PACS's host name or address.
    pub host: String,
    /// The PACS's DICOM port.
    pub port: u16,
    /// Our AE title (the calling AE the PACS checks).
    #[serde(default = "default_calling_ae")]
    pub calling_ae: String,
    /// Send results of negative series too (positives are always sent).
    #[serde(default)]
    pub send_negative: bool,
    /// Send a "not analysed" result for series the analyser could not judge.
    #[serde(default)]
    pub send_not_analysed: bool,
    /// First pause after a failed delivery, in seconds; doubled after each further failure ...
    #[serde(default = "default_retry_initial_s")]
    pub retry_initial_s: f64,
    /// ... up to this many seconds.
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: f64,
    /// Refusals of one object by the PACS (a failure status, not an unreachable PACS) before the
    /// object is parked in `outbox/parked/` for a person to look at. A PACS that is down or
    /// refuses the association never parks anything: the queue waits for it.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Largest size of the outbox (waiting and parked objects), in MiB; beyond it the analyser
    /// writes no new result and logs an error saying so.
    #[serde(default = "default_outbox_max_mib")]
    pub outbox_max_mib: u64,
    /// Seconds to wait for the TCP connection, and then for each response of the PACS.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// `[dicom.send.tls]`: DICOM over TLS to the PACS. Absent: plain TCP.
    #[serde(default)]
    pub tls: Option<SendTls>,
}

/// `[dicom.send.tls]`: whom to trust and, for mutual TLS, who we are. PEM files; paths relative
/// to the profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendTls {
    /// CA certificate(s) that signed the PACS's certificate: the only ones trusted.
    pub ca: PathBuf,
    /// Our client certificate (and intermediates), for a PACS that asks for one; with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the PACS's certificate must carry (DNS name or IP address); default `host`.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_calling_ae() -> String {
    "PE_SENTINEL".into()
}
fn default_retry_initial_s() -> f64 {
    5.0
}
fn default_retry_max_s() -> f64 {
    600.0
}
fn default_max_attempts() -> u32 {
    5
}
fn default_outbox_max_mib() -> u64 {
    1024
}
fn default_timeout_s() -> f64 {
    30.0
}

/// A `[dicom.send]` value that cannot work: the key, what it is and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[dicom.send] `{key}` = {found} is not allowed: {allowed}; fix it in the board profile")]
pub struct SendConfigError {
    pub key: &'static str,
    pub found: String,
    pub allowed: &'static str,
}

/// Whether `ae` is a usable AE title: 1 to 16 characters of the default repertoire, no
/// backslash or control character, not only spaces (PS3.5 6.2, VR AE).
pub fn valid_ae_title(ae: &str) -> bool {
    let t = ae.trim();
    !t.is_empty() && ae.len() <= 16 && ae.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\')
}

impl SendConfig {
    /// Checks every value; the first one out of range is the error.
    pub fn validate(&self) -> Result<(), SendConfigError> {
        let err = |key, found: String, allowed| Err(SendConfigError { key, found, allowed });
        for (key, ae) in [("peer_ae", &self.peer_ae), ("calling_ae", &self.calling_ae)] {
            if !valid_ae_title(ae) {
                return err(key, format!("{ae:?}"), "1 to 16 ASCII characters, no backslash, not only spaces");
            }
        }
        if self.host.trim().is_empty() || self.host.chars().any(|c| c.is_whitespace() || c == '@') {
            return err("host", format!("{:?}", self.host), "a host name or IP address");
        }
        if self.port == 0 {
            return err("port", "0".into(), "1 to 65535");
        }
        if !(0.1..=3600.0).contains(&self.retry_initial_s) {
            return err("retry_initial_s", self.retry_initial_s.to_string(), "0.1 to 3600 seconds");
        }
        if !(self.retry_initial_s..=86400.0).contains(&self.retry_max_s) {
            return err("retry_max_s", self.retry_max_s.to_string(), "retry_initial_s to 86400 seconds");
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return err("max_attempts", self.max_attempts.to_string(), "1 to 1000");
        }
        if !(1..=1_048_576).contains(&self.outbox_max_mib) {
            return err("outbox_max_mib", self.outbox_max_mib.to_string(), "1 to 1048576 MiB");
        }
        if !(1.0..=600.0).contains(&self.timeout_s) {
            return err("timeout_s", self.timeout_s.to_string(), "1 to 600 seconds");
        }
        Ok(())
    }

    /// The pause before the next try after `failures` failed ones in a row (1 = the first):
    /// `retry_initial_s * 2^(failures-1)`, at most `retry_max_s`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30) as i32;
        Duration::from_secs_f64((self.retry_initial_s * 2f64.powi(exp)).min(self.retry_max_s))
    }

    pub fn outbox_max_bytes(&self) -> u64 {
        self.outbox_max_mib * 1024 * 1024
    }

    /// `AE@host:port`, for logs and the delivery ledger.
    pub fn peer(&self) -> String {
        format!("{}@{}:{}", self.peer_ae.trim(), self.host, self.port)
    }
}

/// The outbox folder of a state folder: `STATE/outbox`.
pub fn outbox_in(state_dir: &Path) -> PathBuf {
    state_dir.join("outbox")
}

/// What the sender reads of a board profile: `[paths] state_dir` and `[dicom.send]`. The rest of
/// the profile is the analyser's and is not looked at here (the analyser checks all of it).
#[derive(Debug, Clone)]
pub struct SenderProfile {
    pub state_dir: PathBuf,
    pub send: Option<SendConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read config {path}: {err}; check the path given with --config")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl SenderProfile {
    pub fn load(path: &Path) -> Result<SenderProfile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|err| ProfileError::Read { path: path.into(), err })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<SenderProfile, ProfileError> {
        #[derive(Deserialize)]
        struct Paths {
            state_dir: PathBuf,
        }
        #[derive(Deserialize)]
        struct Dicom {
            send: Option<SendConfig>,
        }
        #[derive(Deserialize)]
        struct Partial {
            paths: Paths,
            dicom: Option<Dicom>,
        }
        let parse = |message: String| ProfileError::Parse { path: path.into(), message };
        let p: Partial = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let mut send = p.dicom.and_then(|d| d.send);
        if let Some(s) = &send {
            s.validate().map_err(|e| parse(e.to_string()))?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        if let Some(t) = send.as_mut().and_then(|s| s.tls.as_mut()) {
            t.ca = abs(std::mem::take(&mut t.ca));
            t.cert = t.cert.take().map(abs);
            t.key = t.key.take().map(abs);
        }
        let state_dir = if p.paths.state_dir.is_absolute() { p.paths.state_dir } else { base.join(p.paths.state_dir) };
        Ok(SenderProfile { state_dir, send })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[paths]\nstate_dir = \"st\"\ndrop_dir = \"d\"\n[engine]\nkind = \"tract\"\n";

    fn send(extra: &str) -> Result<SenderProfile, ProfileError> {
        let t = format!("{MIN}[dicom.send]\npeer_ae = \"PACS\"\nhost = \"127.0.0.1\"\nport = 11112\n{extra}");
        SenderProfile::parse(&t, Path::new("/etc/p/profile.toml"))
    }

    #[test]
    fn defaults_state_dir_and_the_rest_of_the_profile_ignored() {
        let p = send("").expect("parses");
        assert_eq!(p.state_dir, Path::new("/etc/p/st"));
        let s = p.send.expect("send table");
        assert_eq!(s.calling_ae, "PE_SENTINEL");
        assert!(!s.send_negative && !s.send_not_analysed);
        assert_eq!(s.peer(), "PACS@127.0.0.1:11112");
        let none = SenderProfile::parse(MIN, Path::new("p.toml")).expect("no [dicom]");
        assert!(none.send.is_none());
        assert!(s.tls.is_none(), "plain TCP unless [dicom.send.tls]");
    }

    #[test]
    fn tls_paths_are_relative_to_the_profile() {
        let p = send("[dicom.send.tls]\nca = \"ca.pem\"\ncert = \"/abs/c.pem\"\nkey = \"k.pem\"\n").expect("parses");
        let t = p.send.and_then(|s| s.tls).expect("tls");
        assert_eq!(t.ca, Path::new("/etc/p/ca.pem"));
        assert_eq!(t.cert.as_deref(), Some(Path::new("/abs/c.pem")));
        assert_eq!(t.key.as_deref(), Some(Path::new("/etc/p/k.pem")));
        let e = send("[dicom.send.tls]\nca = \"ca.pem\"\ncolour = 1\n").expect_err("unknown").to_string();
        assert!(e.contains("colour"), "{e}");
        let e = send("[dicom.send.tls]\ncert = \"c.pem\"\n").expect_err("no ca").to_string();
        assert!(e.contains("ca"), "{e}");
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key() {
        let e = send("calling_ae = \"A\\\\B\"\n").expect_err("backslash").to_string();
        assert!(e.contains("calling_ae") && e.contains("backslash"), "{e}");
        let e = send("calling_ae = \"ABCDEFGHIJKLMNOPQ\"\n").expect_err("17 chars").to_string();
        assert!(e.contains("calling_ae"), "{e}");
        let e = send("retry_max_s = 1.0\n").expect_err("max < initial").to_string();
        assert!(e.contains("retry_max_s"), "{e}");
        let e = send("max_attempts = 0\n").expect_err("zero").to_string();
        assert!(e.contains("max_attempts"), "{e}");
        let e = send("colour = 3\n").expect_err("unknown").to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = send("retry_initial_s = 2.0\nretry_max_s = 10.0\n").expect("ok").send.expect("send");
        let secs: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 10, 10, 10]);
        assert_eq!(s.backoff(u32::MAX).as_secs(), 10);
    }
}
