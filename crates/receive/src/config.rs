//! The `[dicom]` section of the board profile as typed values, shared by the receiver and the main
//! crate (whose profile parser rejects unknown keys, so it must know this section too). Every key is
//! checked with its name; allowed senders are parsed into AE titles with IP addresses or networks.
//! Touches nothing but the text it is given (and the one file [`ReceiveProfile::load`] reads).

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default AE title of the box.
pub const DEFAULT_AE_TITLE: &str = "PE-SENTINEL";
/// The smallest max PDU the receiver offers (the issue asks for at least 64 KiB).
pub const MIN_PDU_BYTES: u32 = 65_536;
/// The largest max PDU offered: beyond this a PDU only costs memory per association.
pub const MAX_PDU_BYTES: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DicomConfigError {
    #[error("key `dicom.{key}` = {found} is out of range; allowed: {allowed}")]
    Range { key: &'static str, found: String, allowed: &'static str },
    #[error("allowed sender `{given}`: {why}; write AE@ADDRESS, e.g. CT_SCANNER@10.1.2.3 or ROUTER@10.1.0.0/16")]
    Allow { given: String, why: String },
}

/// `[dicom]`: the receiver (`pe-sentinel-receive`). Absent: the box receives nothing over DICOM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dicom {
    /// Our AE title (the called AE title the scanner must use), 1 to 16 characters.
    #[serde(default = "default_ae_title")]
    pub ae_title: String,
    /// ADDR:PORT to listen on when systemd passes no socket and no --listen is given.
    #[serde(default)]
    pub listen: Option<String>,
    /// The senders allowed to associate: each calling AE title with its addresses or networks.
    #[serde(default)]
    pub allow: Vec<AllowRaw>,
    /// Associations served at once; one more is rejected (transient, local limit exceeded).
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
    /// Seconds to wait for the A-ASSOCIATE-RQ after the connection opens (ARTIM).
    #[serde(default = "default_artim_timeout_s")]
    pub artim_timeout_s: f64,
    /// Seconds an association may stay silent before it is aborted.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: f64,
    /// The largest PDU we accept (offered in the A-ASSOCIATE-AC), 65536 to 16777216 bytes.
    #[serde(default = "default_max_pdu_bytes")]
    pub max_pdu_bytes: u32,
    /// TCP_NODELAY on each association (responses leave at once instead of waiting for an ACK).
    #[serde(default = "default_true")]
    pub tcp_nodelay: bool,
    /// Free space (MB) the spool's file system must keep; below it C-STORE answers 0xA700.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// The largest single instance accepted (MB); a larger one answers 0xA700.
    #[serde(default = "default_max_instance_mb")]
    pub max_instance_mb: u64,
    /// The receiver's own state (its association audit), relative to the profile.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `[dicom.tls]`: DICOM over TLS (PS3.15 Annex B) on the receiver's socket. Absent: plain TCP.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// `[dicom.send]`: the results sender's table (pe-sentinel-send and the analyser read it); not
    /// the receiver's business, kept unread so one profile serves all three.
    #[serde(default)]
    pub send: Option<toml::Value>,
}

/// `[dicom.tls]`: the receiver's certificate chain and private key (PEM files), and optionally
/// the CA whose certificates senders must present (mutual TLS). Paths are relative to the profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The receiver's certificate, followed by any intermediates (PEM).
    pub cert: PathBuf,
    /// The private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that must have signed each sender's client certificate. Absent:
    /// senders need no certificate (the AE title and address checks still apply).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// One `[[dicom.allow]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRaw {
    pub ae_title: String,
    pub addresses: Vec<String>,
}

fn default_ae_title() -> String {
    DEFAULT_AE_TITLE.to_string()
}
fn default_max_associations() -> usize {
    4
}
fn default_artim_timeout_s() -> f64 {
    30.0
}
fn default_idle_timeout_s() -> f64 {
    120.0
}
fn default_max_pdu_bytes() -> u32 {
    256 * 1024
}
fn default_true() -> bool {
    true
}
fn default_min_free_mb() -> u64 {
    1024
}
fn default_max_instance_mb() -> u64 {
    1024
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/pe-sentinel-receive")
}

impl Default for Dicom {
    fn default() -> Self {
        Dicom {
            ae_title: default_ae_title(),
            listen: None,
            allow: Vec::new(),
            max_associations: default_max_associations(),
            artim_timeout_s: default_artim_timeout_s(),
            idle_timeout_s: default_idle_timeout_s(),
            max_pdu_bytes: default_max_pdu_bytes(),
            tcp_nodelay: true,
            min_free_mb: default_min_free_mb(),
            max_instance_mb: default_max_instance_mb(),
            state_dir: default_state_dir(),
            tls: None,
            send: None,
        }
    }
}

/// An IP network: an address and a prefix length (a single address has the full length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("`{a}` is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix `/{p}` is not 0 to {max}")),
            },
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn mask_eq(n: &[u8], a: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if n[..full] != a[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (n[full] & mask) == (a[full] & mask)
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An allowed sender: its calling AE title and where it may connect from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub ae_title: String,
    pub networks: Vec<Network>,
}

/// Parses `AE@ADDRESS` (the `--allow` flag); ADDRESS may be a network `10.1.0.0/16`.
pub fn parse_allow_flag(s: &str) -> Result<Allowed, DicomConfigError> {
    let err = |why: String| DicomConfigError::Allow { given: s.to_string(), why };
    let (ae, addr) = s.rsplit_once('@').ok_or_else(|| err("no `@`".into()))?;
    check_ae(ae).map_err(err)?;
    Ok(Allowed { ae_title: ae.to_string(), networks: vec![Network::parse(addr).map_err(err)?] })
}

/// An AE title as the standard allows it: 1 to 16 characters, no backslash or control characters,
/// not all spaces.
pub fn check_ae(ae: &str) -> Result<(), String> {
    if ae.trim().is_empty() || ae.len() > 16 {
        return Err(format!("AE title `{ae}` must be 1 to 16 characters"));
    }
    if ae.chars().any(|c| c == '\\' || c.is_control() || !c.is_ascii()) {
        return Err(format!("AE title `{ae}` may hold no backslash, control or non-ASCII characters"));
    }
    Ok(())
}

impl Dicom {
    /// Range-checks every key; returns the allowed senders parsed.
    pub fn check(&self) -> Result<Vec<Allowed>, DicomConfigError> {
        let range =
            |key: &'static str, found: String, allowed: &'static str| DicomConfigError::Range { key, found, allowed };
        check_ae(&self.ae_title)
            .map_err(|_| range("ae_title", format!("{:?}", self.ae_title), "1 to 16 ASCII characters, no backslash"))?;
        if let Some(l) = &self.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(range("listen", format!("{l:?}"), "ADDR:PORT, e.g. \"0.0.0.0:104\" or \"[::]:104\""));
            }
        }
        if !(1..=64).contains(&self.max_associations) {
            return Err(range("max_associations", self.max_associations.to_string(), "1 to 64"));
        }
        for (key, v) in [("artim_timeout_s", self.artim_timeout_s), ("idle_timeout_s", self.idle_timeout_s)] {
            if !(1.0..=3600.0).contains(&v) {
                return Err(range(key, v.to_string(), "1 to 3600 seconds"));
            }
        }
        if !(MIN_PDU_BYTES..=MAX_PDU_BYTES).contains(&self.max_pdu_bytes) {
            return Err(range("max_pdu_bytes", self.max_pdu_bytes.to_string(), "65536 to 16777216 bytes"));
        }
        if !(1..=65_536).contains(&self.max_instance_mb) {
            return Err(range("max_instance_mb", self.max_instance_mb.to_string(), "1 to 65536 MB"));
        }
        let mut out: Vec<Allowed> = Vec::new();
        for a in &self.allow {
            let given = format!("{}@{}", a.ae_title, a.addresses.join(","));
            check_ae(&a.ae_title).map_err(|why| DicomConfigError::Allow { given: given.clone(), why })?;
            if a.addresses.is_empty() {
                return Err(DicomConfigError::Allow { given, why: "no addresses".into() });
            }
            let mut networks = Vec::new();
            for s in &a.addresses {
                networks.push(Network::parse(s).map_err(|why| DicomConfigError::Allow { given: given.clone(), why })?);
            }
            merge_allowed(&mut out, Allowed { ae_title: a.ae_title.clone(), networks });
        }
        Ok(out)
    }
}

/// Adds a sender to a list, joining the networks of one AE title given twice.
pub fn merge_allowed(list: &mut Vec<Allowed>, a: Allowed) {
    match list.iter_mut().find(|x| x.ae_title == a.ae_title) {
        Some(x) => x.networks.extend(a.networks),
        None => list.push(a),
    }
}

/// The parts of a board profile the receiver reads: `[paths] drop_dir` and `[dicom]`. Other
/// sections are the analyser's (the main crate checks them all: `pe-sentinel check`).
#[derive(Debug, Deserialize)]
struct ProfilePart {
    paths: Option<PathsPart>,
    dicom: Option<Dicom>,
}

#[derive(Debug, Deserialize)]
struct PathsPart {
    drop_dir: Option<PathBuf>,
}

/// What the receiver needs from the profile, paths made absolute relative to it.
#[derive(Debug, Clone)]
pub struct ReceiveProfile {
    pub drop_dir: Option<PathBuf>,
    pub dicom: Dicom,
    pub allowed: Vec<Allowed>,
    /// False when the profile has no `[dicom]` section (the defaults are used).
    pub has_dicom: bool,
}

impl ReceiveProfile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}; check the path given with --config", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, String> {
        let part: ProfilePart = toml::from_str(text).map_err(|e| format!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let has_dicom = part.dicom.is_some();
        let mut dicom = part.dicom.unwrap_or_default();
        let allowed = dicom.check().map_err(|e| format!("config {}: {e}", path.display()))?;
        dicom.state_dir = abs(std::mem::take(&mut dicom.state_dir));
        if let Some(t) = dicom.tls.as_mut() {
            t.cert = abs(std::mem::take(&mut t.cert));
            t.key = abs(std::mem::take(&mut t.key));
            t.client_ca = t.client_ca.take().map(abs);
        }
        Ok(ReceiveProfile { drop_dir: part.paths.and_then(|p| p.drop_dir).map(abs), dicom, allowed, has_dicom })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix_and_mapped_v4() {
        let n = Network::parse("10.1.0.0/16").expect("net");
        assert!(n.contains("10.1.200.3".parse().expect("ip")));
        assert!(!n.contains("10.2.0.1".parse().expect("ip")));
        assert!(n.contains("::ffff:10.1.0.9".parse().expect("ip")));
        let one = Network::parse("127.0.0.1").expect("net");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let odd = Network::parse("192.168.4.0/22").expect("net");
        assert!(odd.contains("192.168.7.255".parse().expect("ip")));
        assert!(!odd.contains("192.168.8.0".parse().expect("ip")));
        assert!(Network::parse("::/0").expect("net").contains("fe80::1".parse().expect("ip")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("ten").is_err());
    }

    #[test]
    fn allow_flags_and_section_are_checked() {
        let a = parse_allow_flag("CT_SCANNER@10.1.2.3").expect("ok");
        assert_eq!(a.ae_title, "CT_SCANNER");
        assert!(parse_allow_flag("CT_SCANNER").is_err());
        assert!(parse_allow_flag("THIS_AE_TITLE_IS_TOO_LONG@1.2.3.4").is_err());
        let text = r#"
[paths]
drop_dir = "drop"
state_dir = "state"
[dicom]
ae_title = "PE-BOX"
max_associations = 2
[[dicom.allow]]
ae_title = "CT1"
addresses = ["10.0.0.1", "10.9.0.0/16"]
[[dicom.allow]]
ae_title = "CT1"
addresses = ["::1"]
"#;
        let p = ReceiveProfile::parse(text, Path::new("/etc/x/profile.toml")).expect("parse");
        assert_eq!(p.drop_dir, Some(PathBuf::from("/etc/x/drop")));
        assert_eq!(p.allowed.len(), 1, "one AE title given twice is one sender");
        assert_eq!(p.allowed[0].networks.len(), 3);
        assert_eq!(p.dicom.state_dir, PathBuf::from("/var/lib/pe-sentinel-receive"));
        let bad = text.replace("max_associations = 2", "max_associations = 0");
        let e = ReceiveProfile::parse(&bad, Path::new("p.toml")).expect_err("range");
        assert!(e.contains("dicom.max_associations"), "{e}");
        let unknown = text.replace("max_associations = 2", "max_assocs = 2");
        assert!(ReceiveProfile::parse(&unknown, Path::new("p.toml")).is_err(), "unknown keys are refused");
        let small = text.replace("max_associations = 2", "max_pdu_bytes = 16384");
        assert!(ReceiveProfile::parse(&small, Path::new("p.toml")).expect_err("pdu").contains("max_pdu_bytes"));
    }
}
