//! `--proxy-mode ipvs` until the sync engine is generic over the mode: a minimal loop of
//! its own (objects in, one [`IpvsProxier`] per family, synced on every change, every
//! `--sync-period`, and every second while destinations drain).
//!
//! ```text
//!   Feed (API watchers | --manifests) ──changed / timer──> model::build ──> IpvsProxier(IPv4)
//!                                                                      └─> IpvsProxier(IPv6)
//!   start: sysctls (vs/conntrack=1, expire_nodest_conn=1, …, strict ARP), ip_vs timeouts
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dataplane::Family;
use kube_proxy_rs::apply::ipvs::{IpsetExec, IpvsNetlink, IpvsProxier, KernelLink};
use kube_proxy_rs::apply::{self, IptablesExec};
use kube_proxy_rs::config::Config;
use kube_proxy_rs::model;
use kube_proxy_rs::render::ipvs::{IpvsOptions, render_ipvs};
use kube_proxy_rs::sync::family_name;
use kube_proxy_rs::watch::Objects;

type Proxier = IpvsProxier<IpvsNetlink, KernelLink, IpsetExec, IptablesExec>;

/// How often to look again while destinations drain (upstream checks every minute).
const DRAIN_POLL: Duration = Duration::from_secs(1);

fn proxiers(cfg: &Config) -> Result<Vec<Proxier>> {
    let choice = apply::detect_backend(cfg.iptables_backend)?;
    tracing::info!("iptables backend {} ({})", choice.backend, choice.reason);
    let mut opts = IpvsOptions::from_config(cfg);
    opts.conntrack_tcp_be_liberal |=
        super::read_sysctl("net/netfilter/nf_conntrack_tcp_be_liberal").is_some_and(|v| v != "0");
    let mut out = Vec::new();
    let mut families = vec![Family::V4];
    if super::ipv6_usable(choice.backend) {
        families.push(Family::V6);
    }
    for family in families {
        out.push(IpvsProxier::new(
            IpvsNetlink::open().context("IPVS over netlink")?,
            KernelLink::open().context("rtnetlink")?,
            IpsetExec,
            IptablesExec::new(family, choice.backend),
            opts.clone(),
            cfg.ipvs.exclude_cidrs.clone(),
        ));
    }
    Ok(out)
}

/// The sysctls IPVS mode needs (upstream's list), and the ip_vs timeouts when set.
fn prepare(cfg: &Config) -> Result<()> {
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
    if cfg.conntrack.tcp_be_liberal {
        super::write_sysctl("net/netfilter/nf_conntrack_tcp_be_liberal", "1");
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

/// One sync of every family; whether all succeeded and how many destinations drain.
fn sync_all(
    ps: &mut [Proxier],
    cfg: &Config,
    node_name: &str,
    objects: &Objects,
    full: bool,
) -> (bool, usize) {
    let b = model::build(
        objects.services.iter().map(|s| &**s),
        objects.endpoint_slices.iter().map(|s| &**s),
        objects.node.as_deref(),
        &cfg.model_options(node_name),
    );
    let mut ok = true;
    let mut draining = 0;
    for p in ps.iter_mut() {
        let family = p.family();
        let t0 = Instant::now();
        match p.sync(b.state(family), full) {
            Ok((a, _)) => {
                draining += a.draining;
                if a.full || !a.ops.is_empty() || a.vips_added + a.vips_removed > 0 {
                    tracing::info!(
                        "synced {} ({}): {} virtual services, {} IPVS changes, {} draining, {} ms",
                        family_name(family),
                        if a.full { "full" } else { "diff" },
                        a.services,
                        a.ops.len(),
                        a.draining,
                        t0.elapsed().as_millis()
                    );
                }
                for op in &a.ops {
                    tracing::debug!("{op}");
                }
            }
            Err(e) => {
                ok = false;
                tracing::error!("{e}");
            }
        }
    }
    (ok, draining)
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

/// Runs IPVS mode (`--once` or the daemon loop).
pub(crate) fn run(cfg: Config, node_name: String, rt: tokio::runtime::Runtime) -> Result<ExitCode> {
    prepare(&cfg)?;
    let mut ps = proxiers(&cfg)?;
    if cfg.once {
        let objects = rt.block_on(super::initial_objects(&cfg, &node_name))?;
        let (ok, _) = sync_all(&mut ps, &cfg, &node_name, &objects, true);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    tracing::info!(node = %node_name, "kube-proxy-rs starting in ipvs mode");
    rt.block_on(async move {
        let mut feed = super::feed(&cfg, &node_name).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let mut last_full = Instant::now();
        let mut needs_full = true;
        let mut draining = 0;
        loop {
            let wait = if draining > 0 || needs_full {
                DRAIN_POLL
            } else {
                cfg.sync_period.max(Duration::from_secs(1))
            };
            tokio::select! {
                () = feed.changed() => {}
                () = tokio::time::sleep(wait) => {}
                _ = term.recv() => {
                    tracing::info!("SIGTERM: exiting; IPVS services stay in place");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            // Batch what lands within the min sync period.
            tokio::time::sleep(cfg.min_sync_period.min(Duration::from_secs(1))).await;
            let Some(objects) = feed.take() else {
                continue;
            };
            let full = needs_full || last_full.elapsed() >= Duration::from_secs(3600);
            // This thread is block_on's, not a worker: the feed keeps running meanwhile.
            let (ok, d) = sync_all(&mut ps, &cfg, &node_name, &objects, full);
            draining = d;
            needs_full = !ok;
            if full && ok {
                last_full = Instant::now();
            }
        }
    })
}
