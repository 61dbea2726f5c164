//! Both families' syncs from one set of objects (upstream's MetaProxier): the model is
//! built once, each family's [`Proxier`] writes its own rules, and one family failing does
//! not stop the other.
//!
//! ```text
//!   Objects ──model::build──> Build { ipv4, ipv6, warnings, skipped }
//!      ├── Proxier(IPv4).sync ──> FamilyOutcome
//!      └── Proxier(IPv6).sync ──> FamilyOutcome      ──> Report
//! ```
//! Synchronous and generic over the [`ModeProxier`]: the daemon runs boxed proxiers of the
//! configured mode, tests run iptables [`Proxier`](super::Proxier)s on the stateful fake.

use std::collections::BTreeMap;

use dataplane::Family;

use super::mode::ModeProxier;
use super::proxier::{Applied, SyncError};
use crate::apply::ApplyError;
use crate::model::{self, Build, ModelOptions, ProxyState, ServiceName, Skip, Warning};
use crate::watch::Objects;

/// One family's result.
#[derive(Debug)]
pub struct FamilyOutcome {
    /// The family.
    pub family: Family,
    /// What was applied, or why not.
    pub result: Result<Applied, SyncError>,
    /// The state the kernel held before, when the sync succeeded (conntrack reconciliation
    /// compares it with the new one).
    pub previous: Option<ProxyState>,
}

/// What one sync did.
#[derive(Debug)]
pub struct Report {
    /// The model built from the objects (both states, warnings, skips).
    pub build: Build,
    /// Each enabled family's outcome.
    pub families: Vec<FamilyOutcome>,
}

impl Report {
    /// Every family applied.
    pub fn ok(&self) -> bool {
        self.families.iter().all(|f| f.result.is_ok())
    }

    /// Whether any family did a full sync.
    pub fn full(&self) -> bool {
        self.families
            .iter()
            .any(|f| f.result.as_ref().is_ok_and(|a| a.full))
    }

    /// The health-check node ports to serve: eTP Local services with a
    /// `healthCheckNodePort`, from either family.
    pub fn health_check_ports(&self) -> BTreeMap<ServiceName, u16> {
        let mut out = BTreeMap::new();
        for st in [&self.build.ipv4, &self.build.ipv6] {
            for (name, port) in &st.services {
                if port.external_policy_local()
                    && let Some(p) = port.health_check_node_port
                {
                    out.insert(name.service(), p);
                }
            }
        }
        out
    }

    /// Ready local endpoints per Service (the larger count of the two families: a
    /// dual-stack pod has one address in each).
    pub fn local_endpoints(&self) -> BTreeMap<ServiceName, usize> {
        let mut out = self.build.ipv4.local_ready_endpoints();
        for (k, v) in self.build.ipv6.local_ready_endpoints() {
            let e = out.entry(k).or_insert(0);
            *e = (*e).max(v);
        }
        out
    }
}

/// The enabled families' proxiers (all of one mode).
#[derive(Debug)]
pub struct Engine<P> {
    proxiers: Vec<P>,
    model: ModelOptions,
}

impl<P: ModeProxier> Engine<P> {
    /// An engine over these proxiers (one per enabled family).
    pub fn new(proxiers: Vec<P>, model: ModelOptions) -> Engine<P> {
        Engine { proxiers, model }
    }

    /// The proxiers.
    pub fn proxiers(&self) -> &[P] {
        &self.proxiers
    }

    /// The proxiers, mutable.
    pub fn proxiers_mut(&mut self) -> &mut [P] {
        &mut self.proxiers
    }

    /// The proxier of a family, if enabled.
    pub fn proxier(&self, family: Family) -> Option<&P> {
        self.proxiers.iter().find(|p| p.family() == family)
    }

    /// The proxier of a family, mutable.
    pub fn proxier_mut(&mut self, family: Family) -> Option<&mut P> {
        self.proxiers.iter_mut().find(|p| p.family() == family)
    }

    /// Builds the model from `objects` and syncs every family (fully when `full`).
    pub fn sync(&mut self, objects: &Objects, full: bool) -> Report {
        let build = model::build(
            objects.services.iter().map(|s| &**s),
            objects.endpoint_slices.iter().map(|s| &**s),
            objects.node.as_deref(),
            &self.model,
        );
        let mut families = Vec::with_capacity(self.proxiers.len());
        for p in &mut self.proxiers {
            let family = p.family();
            let (result, previous) = match p.sync(build.state(family), full) {
                Ok((applied, previous)) => (Ok(applied), previous),
                Err(e) => (Err(e), None),
            };
            families.push(FamilyOutcome {
                family,
                result,
                previous,
            });
        }
        Report { build, families }
    }

    /// The (family, canary) pairs that are gone (for iptables mode: the table whose canary
    /// chain is gone).
    pub fn missing_canaries(&mut self) -> Result<Vec<(Family, &'static str)>, ApplyError> {
        let mut out = Vec::new();
        for p in &mut self.proxiers {
            let family = p.family();
            for t in p.missing_canaries()? {
                out.push((family, t));
            }
        }
        Ok(out)
    }
}

/// Warnings and skips as log lines, once each (for the caller to log).
pub fn describe(warnings: &[Warning], skipped: &[Skip]) -> Vec<String> {
    warnings
        .iter()
        .map(ToString::to_string)
        .chain(skipped.iter().map(ToString::to_string))
        .collect()
}
