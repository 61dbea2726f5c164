//! Which iptables backend the node uses: `legacy` (x_tables) or `nft` (nf_tables). Both
//! can hold rules at once and packets traverse both, so kube-proxy must write where the
//! node's other software (kubelet, the CNI) writes, as upstream's iptables wrapper decides.
//!
//! ```text
//!   iptables-{nft,legacy}-save, ip6tables-… ──Probe──> decide() ──> BackendChoice { backend, reason }
//!     1. kubelet's KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY chain (nft first, as the wrapper)
//!     2. kube-proxy's own chains (a restart must keep writing where it wrote)
//!     3. more rules
//!     4. nft (the wrapper's default)
//! ```
//! `--iptables-backend legacy|nft` skips the probes.

use std::fmt;
use std::process::{Command, Stdio};

use crate::config::IptablesBackend;

/// An iptables backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `iptables-legacy` (x_tables, `/run/xtables.lock`).
    Legacy,
    /// `iptables-nft` (nf_tables).
    Nft,
}

impl Backend {
    /// `legacy` / `nft`, as in the binaries' names.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The backend chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendChoice {
    /// The backend.
    pub backend: Backend,
    /// Why, for the log.
    pub reason: String,
}

/// What `iptables-save` of each backend printed (both families concatenated); `None` when
/// the binaries are missing or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// `iptables-legacy-save` + `ip6tables-legacy-save`.
    pub legacy: Option<String>,
    /// `iptables-nft-save` + `ip6tables-nft-save`.
    pub nft: Option<String>,
}

/// Why detection failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Neither backend's `iptables-save` ran.
    #[error("neither iptables-legacy-save nor iptables-nft-save could be run")]
    NoBinaries,
    /// The forced or chosen backend's binaries are missing.
    #[error("iptables backend {backend} chosen ({reason}) but {program} cannot be run")]
    Missing {
        /// The backend.
        backend: Backend,
        /// Why it was chosen.
        reason: String,
        /// The missing program.
        program: String,
    },
}

const KUBELET_CHAINS: [&str; 2] = [":KUBE-IPTABLES-HINT ", ":KUBE-KUBELET-CANARY "];

fn has_kubelet_chains(save: &str) -> bool {
    save.lines()
        .any(|l| KUBELET_CHAINS.iter().any(|c| l.starts_with(c)))
}

fn kube_chains(save: &str) -> usize {
    save.lines().filter(|l| l.starts_with(":KUBE-")).count()
}

fn rules(save: &str) -> usize {
    save.lines().filter(|l| l.starts_with("-A ")).count()
}

/// Picks the backend from what the probes saw (pure).
pub fn decide(probe: &Probe) -> BackendChoice {
    let choice = |backend, reason: &str| BackendChoice {
        backend,
        reason: reason.to_string(),
    };
    let (legacy, nft) = (probe.legacy.as_deref(), probe.nft.as_deref());
    match (legacy, nft) {
        (Some(_), None) => return choice(Backend::Legacy, "only iptables-legacy is available"),
        (None, Some(_)) => return choice(Backend::Nft, "only iptables-nft is available"),
        _ => {}
    }
    let (l, n) = (legacy.unwrap_or(""), nft.unwrap_or(""));
    if has_kubelet_chains(n) {
        return choice(Backend::Nft, "kubelet's chains are in nf_tables");
    }
    if has_kubelet_chains(l) {
        return choice(Backend::Legacy, "kubelet's chains are in x_tables (legacy)");
    }
    let (kl, kn) = (kube_chains(l), kube_chains(n));
    if kl != kn {
        return if kl > kn {
            choice(Backend::Legacy, "more KUBE-* chains in legacy")
        } else {
            choice(Backend::Nft, "more KUBE-* chains in nf_tables")
        };
    }
    let (rl, rn) = (rules(l), rules(n));
    if rl > rn {
        return choice(Backend::Legacy, "more rules in legacy");
    }
    if rn > rl {
        return choice(Backend::Nft, "more rules in nf_tables");
    }
    choice(Backend::Nft, "no rules in either backend: nft by default")
}

fn save_output(program: &str) -> Option<String> {
    let o = Command::new(program)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn probe_backend(b: Backend) -> Option<String> {
    let v4 = save_output(&format!("iptables-{b}-save"))?;
    let v6 = save_output(&format!("ip6tables-{b}-save")).unwrap_or_default();
    Some(v4 + &v6)
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Chooses the backend: forced by `--iptables-backend`, else detected from the node's
/// current rules (reads only: `iptables-save` of both backends).
pub fn detect_backend(flag: IptablesBackend) -> Result<BackendChoice, BackendError> {
    let choice = match flag {
        IptablesBackend::Legacy => BackendChoice {
            backend: Backend::Legacy,
            reason: "--iptables-backend legacy".into(),
        },
        IptablesBackend::Nft => BackendChoice {
            backend: Backend::Nft,
            reason: "--iptables-backend nft".into(),
        },
        IptablesBackend::Auto => {
            let probe = Probe {
                legacy: probe_backend(Backend::Legacy),
                nft: probe_backend(Backend::Nft),
            };
            if probe.legacy.is_none() && probe.nft.is_none() {
                return Err(BackendError::NoBinaries);
            }
            decide(&probe)
        }
    };
    let program = format!("iptables-{}-restore", choice.backend);
    if !runs(&program) {
        return Err(BackendError::Missing {
            backend: choice.backend,
            reason: choice.reason,
            program,
        });
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(legacy: Option<&str>, nft: Option<&str>) -> Backend {
        decide(&Probe {
            legacy: legacy.map(str::to_string),
            nft: nft.map(str::to_string),
        })
        .backend
    }

    const EMPTY: &str = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
    const HINT: &str = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";
    const OURS: &str = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n";
    const RULES: &str = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n";

    #[test]
    fn backend_follows_the_wrapper_then_our_chains_then_rule_counts() {
        assert_eq!(probe(Some(EMPTY), Some(EMPTY)), Backend::Nft);
        assert_eq!(probe(Some(HINT), Some(EMPTY)), Backend::Legacy);
        assert_eq!(probe(Some(HINT), Some(HINT)), Backend::Nft); // nft checked first
        assert_eq!(probe(Some(OURS), Some(RULES)), Backend::Legacy);
        assert_eq!(probe(Some(RULES), Some(OURS)), Backend::Nft);
        assert_eq!(probe(Some(OURS), Some(HINT)), Backend::Nft); // kubelet wins
        assert_eq!(probe(Some(RULES), Some(EMPTY)), Backend::Legacy);
        assert_eq!(probe(Some(EMPTY), Some(RULES)), Backend::Nft);
        assert_eq!(probe(Some(RULES), None), Backend::Legacy);
        assert_eq!(probe(None, Some(EMPTY)), Backend::Nft);
        let c = decide(&Probe {
            legacy: Some(HINT.into()),
            nft: Some(EMPTY.into()),
        });
        assert!(c.reason.contains("kubelet"), "{}", c.reason);
    }
}
