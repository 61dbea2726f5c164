//! Steps 2 to 4 of the demo: start the daemons, show that the cluster works, break it twice
//! and let diag explain. Each step reports checks; a check that fails ends the run.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Value, json};

use super::objects::{self, NodeInfo};
use super::{Check, Demo, DemoError, api, diag};
use crate::{ConnError, Greeting, Host};

const T: Duration = Duration::from_secs(2);

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// One TCP exchange with an echo server: its greeting, or how it failed.
fn ask(from: &Host, addr: Ipv4Addr, port: u16, timeout: Duration) -> Result<Greeting, ConnError> {
    let line = from.tcp_connect(v4(addr), port, timeout)?;
    Greeting::parse(&line).ok_or(ConnError::NoReply)
}

fn describe(r: &Result<Greeting, ConnError>) -> String {
    match r {
        Ok(g) => format!(
            "answered by {} (it saw the client as {})",
            g.host,
            g.client.ip()
        ),
        Err(e) => e.to_string(),
    }
}

/// Step 2: bgpd and kube-proxy-rs on every node.
pub(crate) fn start_daemons(d: &mut Demo<'_>) -> Result<(), DemoError> {
    d.out.step(
        2,
        "start bgpd and kube-proxy-rs on every node (against the API server double)",
    );
    let dir = d.lab.dir().to_path_buf();
    let tor_ip = d.tor.ipv4()?;
    for i in 0..d.nodes.len() {
        d.interrupted()?;
        let (bins, kc) = (d.opts.bins.clone(), d.kubeconfig.clone());
        let n = &mut d.nodes[i];
        n.start_bgpd(&bins, &dir, tor_ip, &kc)?;
        n.start_kube_proxy(&bins, &dir, &kc)?;
        let pids: Vec<(String, String, i32)> = [&n.bgpd, &n.kube_proxy]
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|p| (p.host().to_string(), p.name().to_string(), p.pid()))
            .collect();
        let name = n.info.name.clone();
        for (h, p, pid) in pids {
            d.out.process(&h, &p, pid);
        }
        d.out.progress(&format!(
            "{name}: bgpd (AS {}) and kube-proxy-rs (iptables mode, nft back end) started",
            super::cluster::node_asn(i as u8 + 1)
        ));
    }
    let nodes: Vec<&super::Node> = d.nodes.iter().collect();
    let synced = {
        let cancel = d.cancel;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(DemoError::Interrupted);
            }
            if nodes.iter().all(|n| n.healthy()) {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let states: BTreeMap<String, bool> = d
        .nodes
        .iter()
        .map(|n| (n.info.name.clone(), n.healthy()))
        .collect();
    d.check(Check {
        step: 2,
        id: "kube_proxy_synced".into(),
        ok: synced,
        text: format!(
            "kube-proxy-rs synced its rules from the API on every node (/healthz 200): {}",
            states
                .iter()
                .map(|(n, ok)| format!("{n} {}", if *ok { "200" } else { "not ready" }))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        detail: json!(states),
    })
}

/// Step 3: BGP up, routes learned, Services answering.
pub(crate) fn show(d: &mut Demo<'_>) -> Result<(), DemoError> {
    d.out.step(3, "show it working");
    let bins = d.opts.bins.clone();
    let tor_ip = d.tor.ipv4()?;
    // BGP sessions, both views
    let up = {
        let (nodes, router) = (&d.nodes, d.router.as_ref());
        let ok = || {
            nodes
                .iter()
                .all(|n| n.session_state(&bins, tor_ip) == "Established")
                && router.is_some_and(|r| {
                    r.sessions()
                        .iter()
                        .all(|(_, s)| s.starts_with("Established"))
                })
        };
        d.wait(40, ok)?
    };
    let bgpd_view: BTreeMap<String, String> = d
        .nodes
        .iter()
        .map(|n| (n.info.name.clone(), n.session_state(&bins, tor_ip)))
        .collect();
    let router_view: BTreeMap<String, String> = d
        .router
        .as_ref()
        .map(|r| r.sessions().into_iter().collect())
        .unwrap_or_default();
    if let Some(r) = &d.router {
        let (cmd, text) = r.show_sessions();
        d.out
            .block(&format!("lab exec {} tor -- {cmd}", d.lab.id()), &text);
    }
    if let Some(n) = d.nodes.first() {
        let text = n
            .neighbors(&bins)
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_default();
        d.out.block(
            &format!(
                "lab exec {} node1 -- bgpd --socket {} show neighbors --json",
                d.lab.id(),
                n.sock.display()
            ),
            &first_lines(&text, 14),
        );
    }
    d.check(Check {
        step: 3,
        id: "bgp_established".into(),
        ok: up,
        text: format!(
            "BGP sessions Established: bgpd's view {}; router's view {}",
            summarize(&bgpd_view),
            summarize(&router_view)
        ),
        detail: json!({"bgpd": bgpd_view, "router": router_view}),
    })?;

    // pod CIDRs learned over BGP in every node's kernel table
    let infos: Vec<NodeInfo> = d.nodes.iter().map(|n| n.info.clone()).collect();
    let learned = |n: &super::Node| -> bool {
        let routes = n.bgp_routes();
        infos
            .iter()
            .filter(|o| o.name != n.info.name)
            .all(|o| routes.iter().any(|(dst, _)| *dst == o.pod_cidr.to_string()))
    };
    let ok = {
        let nodes = &d.nodes;
        d.wait(20, || nodes.iter().all(&learned))?
    };
    let tables: BTreeMap<String, Vec<String>> = d
        .nodes
        .iter()
        .map(|n| {
            (
                n.info.name.clone(),
                n.bgp_routes()
                    .into_iter()
                    .map(|(dst, gw)| format!("{dst} via {gw}"))
                    .collect(),
            )
        })
        .collect();
    if let Some(n) = d.nodes.first() {
        let text = n.host.ip(&["-4", "route", "show"]).unwrap_or_default();
        d.out
            .block(&format!("lab exec {} node1 -- ip route", d.lab.id()), &text);
    }
    d.check(Check {
        step: 3,
        id: "pod_routes".into(),
        ok,
        text: format!(
            "every node learned the other nodes' pod CIDRs over BGP (proto bgp): {}",
            tables
                .iter()
                .map(|(n, r)| format!("{n} [{}]", r.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        detail: json!(tables),
    })?;

    // a pod on node1 to web's ClusterIP, endpoints on node2 and node3
    let pod1 = d.nodes[0].pod.clone();
    let backends: Vec<String> = objects::web_backends(&infos)
        .iter()
        .map(|n| n.pod.clone())
        .collect();
    d.wait(20, || {
        ask(&pod1, objects::WEB_IP, objects::SERVICE_PORT, T).is_ok()
    })?;
    let mut answered: BTreeMap<String, u32> = BTreeMap::new();
    let mut errors = Vec::new();
    for _ in 0..16 {
        match ask(&pod1, objects::WEB_IP, objects::SERVICE_PORT, T) {
            Ok(g) => *answered.entry(g.host).or_default() += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    let all_backends = backends.iter().all(|b| answered.contains_key(b));
    let only_backends = answered.keys().all(|h| backends.contains(h));
    d.check(Check {
        step: 3,
        id: "clusterip".into(),
        ok: errors.is_empty() && all_backends && only_backends,
        text: format!(
            "pod1 (node1) -> web {}:{}: 16 connections answered by {} (endpoints on {}){}",
            objects::WEB_IP,
            objects::SERVICE_PORT,
            answered
                .iter()
                .map(|(h, n)| format!("{h} x{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            backends.join(" and "),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; failures: {errors:?}")
            }
        ),
        detail: json!({"service": "demo/web", "answered": answered, "endpoints": backends,
                       "failures": errors}),
    })?;

    // the NodePort from the router
    let node1_ip = d.nodes[0].info.addr;
    let r = ask(&d.tor, node1_ip, objects::NODEPORT, T);
    let ok = matches!(&r, Ok(g) if backends.contains(&g.host) && g.client.ip() == v4(node1_ip));
    d.check(Check {
        step: 3,
        id: "nodeport".into(),
        ok,
        text: format!(
            "tor -> node1 {node1_ip}:{} (NodePort of web-nodeport): {}",
            objects::NODEPORT,
            describe(&r)
        ),
        detail: json!({"service": "demo/web-nodeport", "target": format!("{node1_ip}:{}", objects::NODEPORT),
                       "answered_by": r.as_ref().ok().map(|g| g.host.clone()),
                       "client_seen": r.as_ref().ok().map(|g| g.client.ip().to_string()),
                       "error": r.as_ref().err().map(|e| e.to_string())}),
    })?;

    // externalTrafficPolicy: Local: the node with the endpoint answers and keeps the client's
    // address; a node without one drops
    let local = objects::web_backends(&infos)
        .first()
        .map(|n| (*n).clone())
        .ok_or_else(|| DemoError::Failed {
            what: "no backend node".into(),
        })?;
    let here = ask(&d.tor, local.addr, objects::LOCAL_NODEPORT, T);
    let there = ask(
        &d.tor,
        node1_ip,
        objects::LOCAL_NODEPORT,
        Duration::from_secs(1),
    );
    let ok = matches!(&here, Ok(g) if g.host == local.pod && g.client.ip() == v4(tor_ip))
        && matches!(there, Err(ConnError::Timeout));
    d.check(Check {
        step: 3,
        id: "etp_local".into(),
        ok,
        text: format!(
            "web-local (eTP Local, :{}): tor -> {} {}: {}; tor -> node1: {} (no local endpoint)",
            objects::LOCAL_NODEPORT,
            local.name,
            local.addr,
            describe(&here),
            describe(&there)
        ),
        detail: json!({"service": "demo/web-local",
                       "local": {"node": local.name, "answered_by": here.as_ref().ok().map(|g| g.host.clone()),
                                 "client_seen": here.as_ref().ok().map(|g| g.client.ip().to_string())},
                       "remote": {"node": "node1", "error": there.as_ref().err().map(|e| e.to_string())}}),
    })?;

    // the Service without endpoints: refused
    let r = ask(&pod1, objects::EMPTY_IP, objects::SERVICE_PORT, T);
    d.check(Check {
        step: 3,
        id: "no_endpoints".into(),
        ok: matches!(r, Err(ConnError::Refused { .. })),
        text: format!(
            "pod1 -> empty {}:{} (no endpoints): {}",
            objects::EMPTY_IP,
            objects::SERVICE_PORT,
            describe(&r)
        ),
        detail: json!({"service": "demo/empty", "error": r.as_ref().err().map(|e| e.to_string())}),
    })
}

/// Step 4: scale web to zero, shut a BGP session; diag explains both; then repair.
pub(crate) fn break_and_diagnose(d: &mut Demo<'_>) -> Result<(), DemoError> {
    d.out.step(4, "break things and let diag explain");
    let bins = d.opts.bins.clone();
    let infos: Vec<NodeInfo> = d.nodes.iter().map(|n| n.info.clone()).collect();
    let pod1 = d.nodes[0].pod.clone();
    let dir = d.lab.dir().join("diag");
    let web_slice = objects::slice("web", &objects::web_backends(&infos));

    // (a) web scaled to zero: its EndpointSlice loses every endpoint
    api::delete(&d.cp, d.api, &web_slice)?;
    api::create(&d.cp, d.api, &objects::slice("web", &[]))?;
    d.out
        .progress("web scaled to zero: its EndpointSlice now lists no endpoint");
    let refused = d.wait(15, || {
        matches!(
            ask(&pod1, objects::WEB_IP, objects::SERVICE_PORT, T),
            Err(ConnError::Refused { .. })
        )
    })?;
    let r = ask(&pod1, objects::WEB_IP, objects::SERVICE_PORT, T);
    d.check(Check {
        step: 4,
        id: "scaled_to_zero".into(),
        ok: refused,
        text: format!("pod1 -> web with no endpoints: {}", describe(&r)),
        detail: json!({"error": r.as_ref().err().map(|e| e.to_string())}),
    })?;
    d.out
        .progress("diag collect on every node (iptables, routes, bgpd, the API's objects)");
    let bundles = diag::collect(&bins, &d.nodes, &dir, "scaled-to-zero", &d.kubeconfig)?;
    let t = diag::trace(&bins, &bundles, "demo/pod1", "svc/demo/web", None)?;
    d.out.block(&t.command, &t.text);
    let verdict = t.json["verdict"].clone();
    let rule = diag::dropping_rule(&t.json).unwrap_or_default();
    let vtext = verdict["text"].as_str().unwrap_or("").to_string();
    d.check(Check {
        step: 4,
        id: "diag_trace_reject".into(),
        ok: verdict["kind"] == "dropped" && vtext.contains("REJECT") && vtext.contains("demo/web"),
        text: format!("diag trace: {vtext}"),
        detail: json!({"verdict": verdict, "rule": rule}),
    })?;
    api::delete(&d.cp, d.api, &objects::slice("web", &[]))?;
    api::create(&d.cp, d.api, &web_slice)?;
    let back = d.wait(15, || {
        ask(&pod1, objects::WEB_IP, objects::SERVICE_PORT, T).is_ok()
    })?;
    d.check(Check {
        step: 4,
        id: "scaled_back".into(),
        ok: back,
        text: "web scaled back up: pod1 reaches it again".into(),
        detail: json!({}),
    })?;

    // (b) the router shuts its session to the last node: that node's pods become unreachable
    let victim = infos.last().cloned().ok_or_else(|| DemoError::Failed {
        what: "no nodes".into(),
    })?;
    let how = match &d.router {
        Some(r) => r.set_session(&victim.name, false)?,
        None => String::new(),
    };
    d.out
        .progress(&format!("BGP session tor-{} shut ({how})", victim.name));
    let cidr = victim.pod_cidr.to_string();
    let withdrawn = {
        let n1 = &d.nodes[0];
        d.wait(20, || !n1.bgp_routes().iter().any(|(dst, _)| *dst == cidr))?
    };
    let r = ask(&pod1, victim.pod_addr, objects::POD_PORT, T);
    let victim_state = d
        .nodes
        .last()
        .map(|n| n.session_state(&bins, d.tor.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED)))
        .unwrap_or_default();
    d.check(Check {
        step: 4,
        id: "bgp_shut".into(),
        ok: withdrawn && r.is_err(),
        text: format!(
            "{cidr} withdrawn from node1's table; pod1 -> {} {}:{}: {}; bgpd on {} sees its session {}",
            victim.pod,
            victim.pod_addr,
            objects::POD_PORT,
            describe(&r),
            victim.name,
            victim_state
        ),
        detail: json!({"node": victim.name, "prefix": cidr, "error": r.as_ref().err().map(|e| e.to_string()),
                       "bgpd_state": victim_state}),
    })?;
    d.out
        .progress("diag collect on every node, then diag check");
    let bundles = diag::collect(&bins, &d.nodes, &dir, "bgp-shut", &d.kubeconfig)?;
    let t = diag::trace(
        &bins,
        &bundles,
        "demo/pod1",
        &format!("demo/{}", victim.pod),
        Some(objects::POD_PORT),
    )?;
    d.out.block(&t.command, &first_lines(&t.text, 12));
    let c = diag::check(&bins, &bundles)?;
    d.out.block(
        &format!("{} (the pod-route-missing findings)", c.command),
        &paragraphs(&c.text, &["FINDINGS", "[pod-route-missing]"]),
    );
    let finding: Option<Value> = c.json["findings"].as_array().and_then(|f| {
        f.iter()
            .find(|x| {
                x["check"] == "pod-route-missing"
                    && x["node"] == "node1"
                    && x["summary"]
                        .as_str()
                        .is_some_and(|s| s.contains(&victim.name))
            })
            .cloned()
    });
    let route_evidence = finding
        .as_ref()
        .and_then(|f| f["evidence"].as_array())
        .and_then(|e| {
            e.iter()
                .find(|x| x["kind"] == "route")
                .and_then(|x| x["text"].as_str().map(str::to_string))
        })
        .unwrap_or_default();
    d.check(Check {
        step: 4,
        id: "diag_check_route_missing".into(),
        ok: finding.is_some() && !route_evidence.is_empty(),
        text: format!(
            "diag check: [pod-route-missing] node1: {} ({route_evidence}); diag trace: {}",
            finding
                .as_ref()
                .and_then(|f| f["summary"].as_str())
                .unwrap_or("no finding"),
            t.json["verdict"]["text"].as_str().unwrap_or("")
        ),
        detail: json!({"finding": finding, "trace_verdict": t.json["verdict"]}),
    })?;
    if let Some(r) = &d.router {
        r.set_session(&victim.name, true)?;
    }
    let back = d.wait(30, || {
        ask(&pod1, victim.pod_addr, objects::POD_PORT, T).is_ok()
    })?;
    d.check(Check {
        step: 4,
        id: "bgp_restored".into(),
        ok: back,
        text: format!(
            "session tor-{} enabled again: {} is routed and pod1 reaches {}",
            victim.name, cidr, victim.pod
        ),
        detail: json!({}),
    })
}

fn summarize(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The blank-line separated paragraphs of `text` that contain one of `needles`.
fn paragraphs(text: &str, needles: &[&str]) -> String {
    text.split("\n\n")
        .filter(|p| needles.iter().any(|n| p.contains(n)))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        return s.to_string();
    }
    format!(
        "{}\n... ({} more lines)",
        lines[..n].join("\n"),
        lines.len() - n
    )
}
