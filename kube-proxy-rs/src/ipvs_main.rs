//! `--proxy-mode ipvs` in the binary: the host preparation IPVS mode needs and its
//! proxiers for the mode-generic sync engine, plus `--dry-run`.
//!
//! ```text
//!   prepare(): sysctls (vs/conntrack=1, expire_nodest_conn=1, …, strict ARP), ip_vs timeouts
//!   proxiers(): IpvsProxier(IPv4) [+ IPv6] over netlink, rtnetlink, ipset, iptables
//!        └──> Engine<DynProxier> ──> the same driver, health and metrics as iptables mode
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use dataplane::Family;
use kube_proxy_rs::apply::Backend;
use kube_proxy_rs::apply::IptablesExec;
use kube_proxy_rs::apply::ipvs::{IpsetExec, IpvsNetlink, IpvsProxier, KernelLink};
use kube_proxy_rs::config::Config;
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
