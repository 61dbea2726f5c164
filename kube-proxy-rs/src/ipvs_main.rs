//! `--proxy-mode ipvs` in the binary: the host preparation IPVS mode needs and its
//! proxiers for the mode-generic sync engine, plus `--dry-run`.
//!
//! ```text
//!   prepare(): sysctls (vs/conntrack=1, expire_nodest_conn=1, …, strict ARP), ip_vs timeouts
//!   proxiers(): IpvsProxier(IPv4) [+ IPv6] over netlink, rtnetlink, ipset, iptables
//!        └──> Engine<DynProxier> ──> the same driver, health and metrics as iptables mode
//!   cleanup(): what IPVS mode left (iptables/nftables mode start, --cleanup)
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use dataplane::Family;
use kube_proxy_rs::apply::ipvs::cleanup as ipvs_cleanup;
use kube_proxy_rs::apply::ipvs::{
    IpsetExec, IpvsError, IpvsKernel, IpvsNetlink, IpvsProxier, KernelLink,
};
use kube_proxy_rs::apply::{Backend, IptablesExec, RuleWriter};
use kube_proxy_rs::config::{Config, IptablesBackend};
use kube_proxy_rs::model;
use kube_proxy_rs::render::ipvs::{IpvsOptions, render_ipvs};
use kube_proxy_rs::sync::{DynProxier, family_name};
use kube_proxy_rs::watch::Objects;

/// IPVS mode's proxiers: IPv4, and IPv6 when ip6tables works.
pub(crate) fn proxiers(cfg: &Config, backend: Backend) -> Result<Vec<DynProxier>> {
    let mut opts = IpvsOptions::from_config(cfg);
    opts.conntrack_tcp_be_liberal |=
        super::read_sysctl("net/netfilter/nf_conntrack_tcp_be_liberal").is_some_and(|v| v != "0");
    let mut families = vec![Family::V4];
    if super::ipv6_usable(backend) {
        families.push(Family::V6);
    } else {
        tracing::warn!("ip6tables-{backend}-restore does not work here: IPv6 is not proxied");
    }
    let mut out: Vec<DynProxier> = Vec::new();
    for family in families {
        out.push(Box::new(IpvsProxier::new(
            IpvsNetlink::open().context("IPVS over generic netlink")?,
            KernelLink::open().context("rtnetlink")?,
            IpsetExec,
            IptablesExec::new(family, backend),
            opts.clone(),
            cfg.ipvs.exclude_cidrs.clone(),
        )));
    }
    Ok(out)
}

/// The sysctls IPVS mode needs (upstream's list), and the ip_vs timeouts when set.
pub(crate) fn prepare(cfg: &Config) -> Result<()> {
    for (k, v) in [
        ("net/ipv4/vs/conntrack", "1"),
        ("net/ipv4/vs/conn_reuse_mode", "0"),
        ("net/ipv4/vs/expire_nodest_conn", "1"),
        ("net/ipv4/vs/expire_quiescent_template", "1"),
        ("net/ipv4/ip_forward", "1"),
    ] {
        super::write_sysctl(k, v);
    }
    if cfg.ipvs.strict_arp {
        super::write_sysctl("net/ipv4/conf/all/arp_ignore", "1");
        super::write_sysctl("net/ipv4/conf/all/arp_announce", "2");
    }
    let t = &cfg.ipvs;
    if !(t.tcp_timeout.is_zero() && t.tcp_fin_timeout.is_zero() && t.udp_timeout.is_zero()) {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        IpvsNetlink::open()?
            .set_timeouts(
                secs(t.tcp_timeout),
                secs(t.tcp_fin_timeout),
                secs(t.udp_timeout),
            )
            .context("ipvsadm --set")?;
    }
    Ok(())
}

/// `--dry-run` in IPVS mode: each family's plan as text.
pub(crate) fn dry_run(cfg: &Config, node_name: &str, objects: &Objects) -> String {
    let b = model::build(
        objects.services.iter().map(|s| &**s),
        objects.endpoint_slices.iter().map(|s| &**s),
        objects.node.as_deref(),
        &cfg.model_options(node_name),
    );
    let opts = IpvsOptions::from_config(cfg);
    let mut out = String::new();
    for family in [Family::V4, Family::V6] {
        out.push_str(&format!(
            "# {} (dry run: nothing was applied)\n",
            family_name(family)
        ));
        out.push_str(&render_ipvs(b.state(family), &opts).to_text());
    }
    out
}

/// Removes what IPVS mode left (`apply::ipvs::cleanup`): with `always` false (a mode
/// switch) only when it left something (`kube-ipvs0`, its ipsets or its chains). Every
/// iptables backend and family that works is cleaned (the one forced by
/// `--iptables-backend`). False if a step failed.
pub(crate) fn cleanup(cfg: &Config, always: bool) -> bool {
    let backends: &[Backend] = match cfg.iptables_backend {
        IptablesBackend::Legacy => &[Backend::Legacy],
        IptablesBackend::Nft => &[Backend::Nft],
        IptablesBackend::Auto => &[Backend::Nft, Backend::Legacy],
    };
    let mut writers: Vec<(String, IptablesExec)> = Vec::new();
    for &b in backends {
        for family in [Family::V4, Family::V6] {
            let mut w = IptablesExec::new(family, b);
            if w.save("filter").is_ok() {
                writers.push((format!("{} {b}", family_name(family)), w));
            }
        }
    }
    let mut rules: Vec<(String, &mut dyn RuleWriter)> = writers
        .iter_mut()
        .map(|(n, w)| (n.clone(), w as &mut dyn RuleWriter))
        .collect();
    let mut link = match KernelLink::open() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("IPVS mode cleanup: {e}");
            return false;
        }
    };
    let mut sets = IpsetExec;
    if !always && !ipvs_cleanup::leftovers(&mut link, &mut sets, &mut rules) {
        return true;
    }
    let mut kernel = match IpvsNetlink::open() {
        Ok(k) => Some(k),
        // No ip_vs: no virtual services (opening does not load the module).
        Err(IpvsError::NoFamily { .. }) => None,
        Err(e) => {
            tracing::error!("IPVS mode cleanup: {e}");
            None
        }
    };
    let done = ipvs_cleanup::cleanup(
        kernel.as_mut().map(|k| k as &mut dyn IpvsKernel),
        &mut link,
        &mut sets,
        &mut rules,
        &cfg.ipvs.exclude_cidrs,
    );
    for (writer, c) in &done.rules {
        if c.jump_rules > 0 || !c.chains.is_empty() {
            tracing::info!(
                "removed IPVS mode's rules from {writer}: {} jump rules, {} chains",
                c.jump_rules,
                c.chains.len()
            );
        }
    }
    if !(done.services.is_empty() && done.sets.is_empty() && !done.link) {
        tracing::info!(
            "removed what IPVS mode left: {} virtual services, {} ipsets, kube-ipvs0 {}",
            done.services.len(),
            done.sets.len(),
            if done.link { "deleted" } else { "absent" }
        );
    }
    for e in &done.errors {
        tracing::error!("IPVS mode cleanup: {e}");
    }
    done.errors.is_empty()
}
