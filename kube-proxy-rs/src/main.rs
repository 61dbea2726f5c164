//! `kube-proxy-rs`: flags in, a running proxy (or one sync, a dry run, a cleanup) out.
//!
//! ```text
//!   Config::load ──> --cleanup   ──> every mode's state removed (IPVS services, kube-ipvs0 and
//!                                    ipsets, iptables chains, nft tables), exit
//!                ──> --dry-run   ──> objects once ──> render ──> stdout (touches nothing)
//!                ──> the other modes' leftovers removed (mode switch), proxiers of the mode
//!                    (iptables: backend detection; IPv4, IPv6 when usable), ctnetlink
//!                ──> --once      ──> one full sync, exit 0 (1 if it failed)
//!                ──> daemon      ──> Feed (API watchers | --manifests) ──> sync driver
//!                                    + /healthz, /livez (:10256), /metrics (127.0.0.1:10249)
//!                ──> --proxy-mode ipvs: the same engine and driver with IPVS proxiers
//!                                       (ipvs_main: sysctls, proxiers, dry run)
//! ```

mod ipvs_main;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dataplane::Family;
use kube_proxy_rs::apply::nftables::{NftExec, NftWriter};
use kube_proxy_rs::apply::{self, Backend, IptablesExec, RuleWriter};
use kube_proxy_rs::config::{Config, ConfigError, IptablesBackend, ProxyMode};
use kube_proxy_rs::conntrack::Ctnetlink;
use kube_proxy_rs::health::{self, ProxyHealth, ServiceHealth};
use kube_proxy_rs::metrics::{self, Metrics};
use kube_proxy_rs::render::iptables::{JUMP_RULES, RenderOptions, render_iptables};
use kube_proxy_rs::render::nftables::{NftOptions, render_nftables, transaction};
use kube_proxy_rs::source::FileSource;
use kube_proxy_rs::sync::driver::{Driver, Host};
use kube_proxy_rs::sync::{
    Debouncer, DynProxier, Engine, NftProxier, Proxier, Timing, family_name,
};
use kube_proxy_rs::watch::{self, Feed, Objects};

/// jemalloc, with its background thread purging freed pages after `dirty_decay_ms` (1 s, set
/// in `.cargo/config.toml`), as
/// in bgpd. A sync's transient buffers (the restore text, the save output read back, the
/// parsed rules: tens of MiB at 10k Services) are freed at once; glibc's malloc kept each new
/// high-water mark of them resident: under churn (issue 8, `examples/churn`) RSS stepped from
/// 252 to 388 MiB in 10 minutes and never came down, with `MALLOC_ARENA_MAX=2` as well.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often `--manifests` files are re-read (a change is used once two reads agree).
const MANIFEST_POLL: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let cfg = match Config::load(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("kube-proxy-rs: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(cfg.verbosity);
    match run(cfg) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbosity: u32) {
    // kube-client logs every failed request at ERROR (its HTTP trace layer); a failed watch
    // is reported once by our watcher at WARN instead, so those stay quiet below -v=4.
    let default = match verbosity {
        0..=3 => "info,kube_client::client::builder=off",
        4..=5 => "info,kube_proxy_rs=debug,kube_proxy_rs_bin=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cfg: Config) -> Result<ExitCode> {
    if cfg.cleanup {
        return cleanup(&cfg);
    }
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let node_name = cfg.node_name(&hostname)?;
    let rt = runtime()?;

    if cfg.dry_run {
        let objects = rt.block_on(initial_objects(&cfg, &node_name))?;
        if cfg.mode == ProxyMode::Ipvs {
            print!("{}", ipvs_main::dry_run(&cfg, &node_name, &objects));
        } else {
            print!("{}", dry_run(&cfg, &node_name, &objects));
        }
        return Ok(ExitCode::SUCCESS);
    }

    prepare_sysctls(&cfg);
    let proxiers = match cfg.mode {
        ProxyMode::Nftables => nftables_proxiers(&cfg),
        ProxyMode::Ipvs => {
            cleanup_nftables();
            let choice = detect_backend(&cfg)?;
            ipvs_main::prepare(&cfg)?;
            ipvs_main::proxiers(&cfg, choice.backend)?
        }
        ProxyMode::Iptables => iptables_proxiers(&cfg)?,
    };
    let engine = Engine::new(proxiers, cfg.model_options(&node_name));
    let conntrack = match Ctnetlink::open() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("conntrack cleanup disabled: {e}");
            None
        }
    };
    let mut host = Host { engine, conntrack };

    if cfg.once {
        let objects = rt.block_on(initial_objects(&cfg, &node_name))?;
        let done = host.sync(&objects, true);
        for w in &done.report.build.warnings {
            tracing::warn!("{w}");
        }
        let mut ok = true;
        for f in &done.report.families {
            match &f.result {
                Ok(a) => tracing::info!(
                    "synced {} (full): {} filter + {} nat rules in {} ms",
                    family_name(f.family),
                    a.filter_rules_written,
                    a.nat_rules_written,
                    done.took.as_millis()
                ),
                Err(e) => {
                    ok = false;
                    tracing::error!("{e}");
                }
            }
        }
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    rt.block_on(daemon(cfg, node_name, host))
}

/// nftables mode's proxiers, after removing what IPVS and iptables mode left (mode switch).
fn nftables_proxiers(cfg: &Config) -> Vec<DynProxier> {
    ipvs_main::cleanup(cfg, false);
    if let Err(e) = cleanup_iptables(cfg, true) {
        tracing::warn!("removing iptables mode's rules: {e:#}");
    }
    let opts = NftOptions::from_config(cfg);
    let mut proxiers: Vec<DynProxier> = vec![Box::new(NftProxier::new(
        NftExec::new(Family::V4),
        opts.clone(),
    ))];
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        proxiers.push(Box::new(NftProxier::new(NftExec::new(Family::V6), opts)));
    } else {
        tracing::warn!("no IPv6 on this host: IPv6 is not proxied");
    }
    proxiers
}

/// iptables mode's proxiers, after removing what nftables mode left (mode switch).
/// The iptables backend to write (`--iptables-backend`, else detected), logged.
fn detect_backend(cfg: &Config) -> Result<apply::BackendChoice> {
    let choice = apply::detect_backend(cfg.iptables_backend)?;
    tracing::info!(
        backend = %choice.backend,
        "iptables backend {} ({})",
        choice.backend,
        choice.reason
    );
    Ok(choice)
}

/// iptables mode's proxiers (after removing what nftables and IPVS mode left): IPv4, and
/// IPv6 when ip6tables works.
fn iptables_proxiers(cfg: &Config) -> Result<Vec<DynProxier>> {
    cleanup_nftables();
    ipvs_main::cleanup(cfg, false);
    let choice = detect_backend(cfg)?;
    let mut opts = RenderOptions::from_config(cfg);
    opts.conntrack_tcp_be_liberal |=
        read_sysctl("net/netfilter/nf_conntrack_tcp_be_liberal").is_some_and(|v| v != "0");
    let mut proxiers: Vec<DynProxier> = vec![Box::new(Proxier::new(
        IptablesExec::new(Family::V4, choice.backend),
        opts.clone(),
    ))];
    if ipv6_usable(choice.backend) {
        proxiers.push(Box::new(Proxier::new(
            IptablesExec::new(Family::V6, choice.backend),
            opts,
        )));
    } else {
        tracing::warn!(
            "ip6tables-{}-restore does not work here: IPv6 is not proxied",
            choice.backend
        );
    }
    Ok(proxiers)
}

async fn feed(cfg: &Config, node_name: &str) -> Result<Feed> {
    Ok(match &cfg.manifests {
        Some(path) => watch::file_feed(path, node_name, MANIFEST_POLL),
        None => {
            let client = watch::client(cfg).await?;
            watch::kube_feed(client, node_name)
        }
    })
}

/// The objects once, for `--once` and `--dry-run`.
async fn initial_objects(cfg: &Config, node_name: &str) -> Result<Arc<Objects>> {
    if let Some(path) = &cfg.manifests {
        let m = FileSource::new(path).read()?;
        return Ok(Arc::new(Objects::from_manifests(&m, node_name)));
    }
    let mut f = feed(cfg, node_name).await?;
    loop {
        if let Some(o) = f.snapshot() {
            return Ok(o);
        }
        if tokio::time::timeout(Duration::from_secs(10), f.changed())
            .await
            .is_err()
        {
            tracing::warn!("still waiting for the API server's initial lists");
        }
    }
}

async fn daemon(cfg: Config, node_name: String, host: Host) -> Result<ExitCode> {
    tracing::info!(node = %node_name, "kube-proxy-rs starting in {} mode", cfg.mode);
    let metrics = Metrics::new();
    let health = Arc::new(Mutex::new(ProxyHealth::new(cfg.sync_period * 2)));
    if let Some(addr) = cfg.healthz_bind_address {
        tokio::spawn(health::serve_healthz(
            addr,
            Arc::clone(&health),
            metrics.clone(),
        ));
    }
    if let Some(addr) = cfg.metrics_bind_address {
        let mode = match cfg.mode {
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
        };
        tokio::spawn(metrics::serve(addr, metrics.clone(), mode));
    }
    let feed = feed(&cfg, &node_name).await?;
    let debouncer = Debouncer::new(Timing::new(cfg.min_sync_period, cfg.sync_period));
    let service_health = ServiceHealth::new(Arc::clone(&health));
    let driver = Driver::new(feed, host, debouncer, metrics, health, service_health);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        () = driver.run() => {}
        _ = term.recv() => tracing::info!("SIGTERM: exiting; the rules stay in place"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: exiting; the rules stay in place"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`: the full-sync restore input of each family, with the jump rules a full
/// sync would ensure as comments.
fn dry_run(cfg: &Config, node_name: &str, objects: &Objects) -> String {
    let b = kube_proxy_rs::model::build(
        objects.services.iter().map(|s| &**s),
        objects.endpoint_slices.iter().map(|s| &**s),
        objects.node.as_deref(),
        &cfg.model_options(node_name),
    );
    let opts = RenderOptions::from_config(cfg);
    let mut out = String::new();
    for w in &b.warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    if cfg.mode == ProxyMode::Nftables {
        let opts = NftOptions::from_config(cfg);
        for family in [Family::V4, Family::V6] {
            out.push_str(&format!(
                "# {}: nft -f - (dry run: nothing was applied)\n",
                family_name(family)
            ));
            let r = render_nftables(b.state(family), &opts);
            match transaction(None, &Default::default(), &r.table) {
                Ok(tx) => out.push_str(&tx.text),
                Err(e) => out.push_str(&format!("# error: {e}\n")),
            }
        }
        return out;
    }
    for family in [Family::V4, Family::V6] {
        let tool = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        out.push_str(&format!(
            "# {}: {tool}-restore --noflush --counters (dry run: nothing was applied)\n",
            family_name(family)
        ));
        for j in &JUMP_RULES {
            out.push_str(&format!(
                "# {tool} -t {} -C/-I {}\n",
                j.table,
                j.restore_line().trim_start_matches("-A ")
            ));
        }
        out.push_str(&render_iptables(b.state(family), &opts).to_restore());
    }
    out
}

/// `--cleanup`: removes every mode's state: IPVS mode's (virtual services, `kube-ipvs0`,
/// ipsets, its chains), iptables mode's rules from every backend that has them (or the one
/// forced), nftables mode's tables; both families.
fn cleanup(cfg: &Config) -> Result<ExitCode> {
    let ipvs_failed = !ipvs_main::cleanup(cfg, true);
    let nft_failed = !cleanup_nftables();
    let failed = cleanup_iptables(cfg, cfg.iptables_backend == IptablesBackend::Auto).is_err();
    Ok(if failed || nft_failed || ipvs_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Deletes the `ip kube-proxy` and `ip6 kube-proxy` tables where they exist (upstream's
/// nftables `CleanupLeftovers`); false if a deletion failed.
fn cleanup_nftables() -> bool {
    let mut ok = true;
    for family in [Family::V4, Family::V6] {
        match NftExec::new(family).delete_table() {
            Ok(true) => tracing::info!(
                "deleted the {} kube-proxy nftables table",
                family_name(family)
            ),
            Ok(false) => {}
            // No nft binary: nothing of nftables mode can be there either.
            Err(apply::ApplyError::Spawn { .. }) => {}
            Err(e) => {
                ok = false;
                tracing::error!("deleting the {} kube-proxy table: {e}", family_name(family));
            }
        }
    }
    ok
}

/// Removes iptables mode's rules (upstream iptables `CleanupLeftovers`); with `only_ours`,
/// backends holding no chain of ours are skipped.
fn cleanup_iptables(cfg: &Config, only_ours: bool) -> Result<()> {
    let backends: Vec<Backend> = match cfg.iptables_backend {
        IptablesBackend::Legacy => vec![Backend::Legacy],
        IptablesBackend::Nft => vec![Backend::Nft],
        IptablesBackend::Auto => vec![Backend::Nft, Backend::Legacy],
    };
    let mut failed = false;
    for b in backends {
        for family in [Family::V4, Family::V6] {
            let mut w = IptablesExec::new(family, b);
            // Skip what is not installed or has nothing of ours (reading only).
            let Ok(save) = w.save("nat").and_then(|n| Ok(n + &w.save("filter")?)) else {
                continue;
            };
            if !apply::declared_chains(&save)
                .iter()
                .any(|c| apply::is_our_chain(c))
                && only_ours
            {
                continue;
            }
            match apply::cleanup(&mut w) {
                Ok(done) => tracing::info!(
                    "cleaned up {} {b}: {} jump rules, {} chains",
                    family_name(family),
                    done.jump_rules,
                    done.chains.len()
                ),
                Err(e) => {
                    failed = true;
                    tracing::error!("cleanup of {} {b} failed: {e}", family_name(family));
                }
            }
        }
    }
    if failed {
        bail!("iptables cleanup failed");
    }
    Ok(())
}

fn ipv6_usable(backend: Backend) -> bool {
    std::path::Path::new("/proc/net/if_inet6").exists()
        && IptablesExec::new(Family::V6, backend)
            .save("filter")
            .is_ok()
}

fn read_sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn write_sysctl(key: &str, value: &str) {
    if read_sysctl(key).as_deref() == Some(value) {
        return;
    }
    match std::fs::write(format!("/proc/sys/{key}"), value) {
        Ok(()) => tracing::info!("set {} = {value}", key.replace('/', ".")),
        Err(e) => tracing::warn!("cannot set {} = {value}: {e}", key.replace('/', ".")),
    }
}

/// The sysctls every mode needs: `route_localnet` for localhost NodePorts, and the conntrack
/// table size and timeouts as upstream's server sets them (`ConntrackConfig::sysctls`). A
/// value that cannot be written (read-only `/proc/sys` in an unprivileged container, or
/// `nf_conntrack_max` outside the initial network namespace) is logged and left.
fn prepare_sysctls(cfg: &Config) {
    if cfg.localhost_node_ports {
        write_sysctl("net/ipv4/conf/all/route_localnet", "1");
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    for (key, value) in cfg.conntrack.sysctls(cpus) {
        write_sysctl(key, &value);
    }
}
