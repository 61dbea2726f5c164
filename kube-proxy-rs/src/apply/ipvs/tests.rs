//! The IPVS proxier on the stateful fakes: what a first sync creates, that a second sync of
//! the same state changes nothing, graceful termination (weight 0, removed once the
//! connections are gone, UDP at once), removals, excluded CIDRs and the ipset diff.

use std::net::IpAddr;

use dataplane::ipvs::{ConnCounts, IpvsState, ServiceKey};
use dataplane::{Family, Protocol};

use super::*;
use crate::apply::FakeWriter;
use crate::model::{
    Endpoint, NodeInfo, ProxyState, ServicePort, ServicePortName, ServiceType, SessionAffinity,
    TrafficPolicy, categorize,
};
use crate::model::{LocalTraffic, NodePortAddresses};

type Fake = IpvsProxier<FakeIpvs, FakeLink, FakeSets, FakeWriter>;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "node-a".into(),
        known: true,
        labels: Default::default(),
        zone: None,
        pod_cidrs: vec!["198.18.64.0/24".parse().unwrap()],
        addresses: Vec::new(),
        primary_ip: Some(ip("198.18.0.1")),
        local_traffic: LocalTraffic::Cidr("198.18.64.0/18".parse().unwrap()),
        node_port_addresses: NodePortAddresses::resolve(Family::V4, &[], None),
    }
}

fn port(name: &str, proto: Protocol, vip: &str, node_port: Option<u16>) -> ServicePort {
    ServicePort {
        name: ServicePortName::new("ns", name, "p", proto),
        service_type: if node_port.is_some() {
            ServiceType::NodePort
        } else {
            ServiceType::ClusterIp
        },
        cluster_ip: ip(vip),
        port: 80,
        protocol: proto,
        node_port,
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        load_balancer_source_ranges: Vec::new(),
        session_affinity: SessionAffinity::None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        traffic_distribution: None,
        topology_mode: None,
    }
}

fn ep(addr: &str) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some("node-a".into()),
        zone: None,
        zone_hints: Default::default(),
        node_hints: Default::default(),
        is_local: true,
    }
}

fn state(ports: &[(ServicePort, Vec<&str>)]) -> ProxyState {
    let mut s = ProxyState::empty(Family::V4, node());
    for (p, eps) in ports {
        let set = categorize(p, eps.iter().map(|e| ep(e)).collect(), "node-a", None);
        s.endpoints.insert(p.name.clone(), set);
        s.services.insert(p.name.clone(), p.clone());
    }
    s
}

fn proxier() -> Fake {
    let link = FakeLink {
        node_addresses: vec![ip("198.18.0.1"), ip("127.0.0.1")],
        ..FakeLink::default()
    };
    IpvsProxier::new(
        FakeIpvs::default(),
        link,
        FakeSets::default(),
        FakeWriter::new(Family::V4),
        crate::render::ipvs::IpvsOptions::default(),
        vec!["198.19.250.0/24".parse().unwrap()],
    )
}

fn key(proto: Protocol, addr: &str) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(addr),
        port: 80,
    }
}

fn set_conns(p: &mut Fake, k: &ServiceKey, server: &str, active: u32, inactive: u32) {
    let s = p.kernel.state.service_mut(k).unwrap();
    let rs = s.servers.iter_mut().find(|r| r.addr == ip(server)).unwrap();
    rs.conns = Some(ConnCounts {
        active,
        inactive,
        persistent: None,
    });
}

#[test]
fn first_sync_creates_everything_and_a_second_changes_nothing() {
    let mut p = proxier();
    let st = state(&[
        (
            port("web", Protocol::Tcp, "198.19.0.10", Some(30080)),
            vec!["198.18.64.2", "198.18.64.3"],
        ),
        (port("none", Protocol::Tcp, "198.19.0.20", None), vec![]),
    ]);
    let (a, old) = p.sync(&st, false).unwrap();
    assert!(a.full && old.is_none());
    let want = "\
-A -t 198.18.0.1:30080 -s rr
-a -t 198.18.0.1:30080 -r 198.18.64.2:8080 -m -w 1
-a -t 198.18.0.1:30080 -r 198.18.64.3:8080 -m -w 1
-A -t 198.19.0.10:80 -s rr
-a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1
-a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1
-A -t 198.19.0.20:80 -s rr
";
    assert_eq!(p.kernel.dump().unwrap().to_save(), want);
    assert_eq!(
        p.link
            .vips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["198.19.0.10", "198.19.0.20"]
    );
    let cluster = &p.sets.sets["KUBE-CLUSTER-IP"].1;
    assert!(cluster.contains("198.19.0.10,tcp:80") && cluster.contains("198.19.0.20,tcp:80"));
    assert!(p.sets.sets["KUBE-NODE-PORT-TCP"].1.contains("30080"));
    let rules = p.rules.save_all();
    assert!(rules.contains("ns/none:p has no endpoints"), "{rules}");
    assert!(rules.contains("-j KUBE-IPVS-FILTER"), "{rules}");

    let (again, old) = p.sync(&st, false).unwrap();
    assert!(!again.full && old.is_some());
    assert!(again.ops.is_empty(), "{:?}", again.ops);
    assert_eq!(
        (again.vips_added, again.vips_removed, again.ipset_bytes),
        (0, 0, 0)
    );
}

#[test]
fn removed_tcp_destination_drains_then_goes() {
    let mut p = proxier();
    let svc = port("web", Protocol::Tcp, "198.19.0.10", None);
    p.sync(
        &state(&[(svc.clone(), vec!["198.18.64.2", "198.18.64.3"])]),
        true,
    )
    .unwrap();
    let k = key(Protocol::Tcp, "198.19.0.10");
    set_conns(&mut p, &k, "198.18.64.3", 1, 2);

    let one = state(&[(svc.clone(), vec!["198.18.64.2"])]);
    let (a, _) = p.sync(&one, false).unwrap();
    assert_eq!(a.draining, 1);
    assert_eq!(a.ops.len(), 1);
    assert!(
        a.ops[0].to_string().ends_with("-r 198.18.64.3:8080 -w 0"),
        "{}",
        a.ops[0]
    );
    let s = p.kernel.state.service(&k).unwrap();
    assert_eq!(s.server(ip("198.18.64.3"), 8080).unwrap().weight, 0);

    // Still connections: kept, nothing sent.
    set_conns(&mut p, &k, "198.18.64.3", 0, 1);
    let (a, _) = p.sync(&one, false).unwrap();
    assert!(a.ops.is_empty() && a.draining == 1);

    // None left: deleted.
    set_conns(&mut p, &k, "198.18.64.3", 0, 0);
    let (a, _) = p.sync(&one, false).unwrap();
    assert_eq!(a.draining, 0);
    assert_eq!(a.ops.len(), 1);
    assert!(
        a.ops[0].to_string().starts_with("ipvsadm -d"),
        "{}",
        a.ops[0]
    );
    assert_eq!(p.kernel.state.service(&k).unwrap().servers.len(), 1);
}

#[test]
fn removed_udp_destination_goes_at_once() {
    let mut p = proxier();
    let svc = port("dns", Protocol::Udp, "198.19.0.53", None);
    p.sync(
        &state(&[(svc.clone(), vec!["198.18.64.2", "198.18.64.3"])]),
        true,
    )
    .unwrap();
    let k = key(Protocol::Udp, "198.19.0.53");
    set_conns(&mut p, &k, "198.18.64.3", 0, 5);
    let (a, _) = p
        .sync(&state(&[(svc, vec!["198.18.64.2"])]), false)
        .unwrap();
    assert_eq!(a.draining, 0);
    assert_eq!(a.ops.len(), 1);
    assert!(
        a.ops[0].to_string().starts_with("ipvsadm -d -u"),
        "{}",
        a.ops[0]
    );
}

#[test]
fn removed_service_goes_with_its_vip_but_foreign_ones_stay() {
    let mut p = proxier();
    // Someone else's service in an excluded CIDR, and its address on kube-ipvs0.
    let foreign = dataplane::ipvs::Service::new(
        key(Protocol::Tcp, "198.19.250.1"),
        dataplane::ipvs::Scheduler::Wlc,
    );
    p.kernel.state.services.push(foreign);
    p.link.exists = true;
    p.link.vips.insert(ip("198.19.250.1"));
    let a = port("a", Protocol::Tcp, "198.19.0.10", None);
    let b = port("b", Protocol::Tcp, "198.19.0.11", None);
    p.sync(
        &state(&[(a.clone(), vec!["198.18.64.2"]), (b, vec!["198.18.64.3"])]),
        true,
    )
    .unwrap();
    let (r, _) = p.sync(&state(&[(a, vec!["198.18.64.2"])]), false).unwrap();
    assert_eq!(r.vips_removed, 1);
    assert_eq!(
        r.ops.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["ipvsadm -D -t 198.19.0.11:80"]
    );
    let left: IpvsState = p.kernel.dump().unwrap();
    assert_eq!(left.services.len(), 2, "{}", left.to_save());
    assert!(p.link.vips.contains(&ip("198.19.250.1")));
    assert!(
        !p.sets.sets["KUBE-CLUSTER-IP"]
            .1
            .contains("198.19.0.11,tcp:80")
    );
}

#[test]
fn affinity_and_scheduler_changes_edit_the_service() {
    let mut p = proxier();
    let mut svc = port("web", Protocol::Tcp, "198.19.0.10", None);
    p.sync(&state(&[(svc.clone(), vec!["198.18.64.2"])]), true)
        .unwrap();
    svc.session_affinity = SessionAffinity::ClientIp {
        timeout_seconds: 60,
    };
    let (a, _) = p
        .sync(&state(&[(svc, vec!["198.18.64.2"])]), false)
        .unwrap();
    assert_eq!(
        a.ops.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["ipvsadm -E -t 198.19.0.10:80"]
    );
    assert_eq!(
        p.kernel.dump().unwrap().to_save(),
        "-A -t 198.19.0.10:80 -s rr -p 60\n-a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n"
    );
}

#[test]
fn ipset_restore_input_is_the_difference() {
    use crate::render::ipvs::{SetName, SetPlan};
    let want = vec![SetPlan {
        set: SetName::ClusterIp,
        name: "KUBE-CLUSTER-IP".into(),
        create: SetName::ClusterIp.create_options(Family::V4),
        entries: [
            "198.19.0.10,tcp:80".to_string(),
            "198.19.0.11,tcp:80".to_string(),
        ]
        .into_iter()
        .collect(),
    }];
    assert_eq!(
        restore_input(&want, ""),
        "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n\
         add KUBE-CLUSTER-IP 198.19.0.10,tcp:80\nadd KUBE-CLUSTER-IP 198.19.0.11,tcp:80\n"
    );
    let saved = "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\n\
                 add KUBE-CLUSTER-IP 198.19.0.10,tcp:80\nadd KUBE-CLUSTER-IP 198.19.0.12,tcp:80\n\
                 create OTHER hash:ip family inet\nadd OTHER 198.18.0.9\n";
    assert_eq!(
        restore_input(&want, saved),
        "del KUBE-CLUSTER-IP 198.19.0.12,tcp:80\nadd KUBE-CLUSTER-IP 198.19.0.11,tcp:80\n"
    );
}

#[test]
fn a_refused_restore_fails_the_sync_and_the_next_is_full() {
    let mut p = proxier();
    let st = state(&[(
        port("web", Protocol::Tcp, "198.19.0.10", None),
        vec!["198.18.64.2"],
    )]);
    p.sync(&st, true).unwrap();
    p.rules.fail_next_restores(1);
    assert!(p.sync(&st, false).is_err());
    assert!(p.applied().is_none());
    let (a, _) = p.sync(&st, false).unwrap();
    assert!(a.full);
}

#[test]
fn switching_from_iptables_mode_removes_its_chains() {
    use crate::render::iptables::{RenderOptions, render_iptables};
    let st = state(&[(
        port("web", Protocol::Tcp, "198.19.0.10", Some(30080)),
        vec!["198.18.64.2"],
    )]);
    let mut p = proxier();
    // What iptables mode left: its jump rules and its rules for the same Service.
    crate::apply::ensure_jump_rules(&mut p.rules).unwrap();
    let left = render_iptables(&st, &RenderOptions::default()).to_restore();
    p.rules.restore(&left).unwrap();
    assert!(p.rules.save_all().contains(":KUBE-SVC-"));

    p.sync(&st, true).unwrap();
    let after = p.rules.save_all();
    assert!(
        !after.contains("KUBE-SVC-") && !after.contains("KUBE-SEP-"),
        "{after}"
    );
    assert!(!after.contains("KUBE-NODEPORTS"), "{after}");
    assert!(after.contains("-j KUBE-IPVS-FILTER"), "{after}");
    // Idempotent: a second full sync finds nothing more to remove.
    p.invalidate();
    p.sync(&st, true).unwrap();
    assert_eq!(p.rules.save_all(), after);
}

/// A rule writer and an ipset fake that see the same rules, so a set still named by a
/// `-m set` rule cannot be destroyed (as the kernel refuses with EBUSY).
mod shared {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::rc::Rc;

    use dataplane::Family;

    use crate::apply::ipvs::{FakeSets, IpvsError, SetWriter};
    use crate::apply::{ApplyError, FakeWriter, RuleWriter};

    #[derive(Clone)]
    pub(super) struct Rules(pub(super) Rc<RefCell<FakeWriter>>);

    impl RuleWriter for Rules {
        fn family(&self) -> Family {
            self.0.borrow().family()
        }
        fn save(&mut self, table: &str) -> Result<String, ApplyError> {
            self.0.borrow_mut().save(table)
        }
        fn restore(&mut self, input: &str) -> Result<(), ApplyError> {
            self.0.borrow_mut().restore(input)
        }
        fn ensure_chain(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
            self.0.borrow_mut().ensure_chain(table, chain)
        }
        fn ensure_rule_first(
            &mut self,
            table: &str,
            chain: &str,
            args: &[&str],
        ) -> Result<bool, ApplyError> {
            self.0.borrow_mut().ensure_rule_first(table, chain, args)
        }
        fn delete_rule(
            &mut self,
            table: &str,
            chain: &str,
            args: &[&str],
        ) -> Result<bool, ApplyError> {
            self.0.borrow_mut().delete_rule(table, chain, args)
        }
        fn chain_exists(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
            self.0.borrow_mut().chain_exists(table, chain)
        }
    }

    pub(super) struct Sets {
        pub(super) sets: FakeSets,
        pub(super) rules: Vec<Rc<RefCell<FakeWriter>>>,
    }

    impl SetWriter for Sets {
        fn save(&mut self) -> Result<String, IpvsError> {
            self.sets.save()
        }
        fn restore(&mut self, input: &str) -> Result<(), IpvsError> {
            let mut in_use = BTreeSet::new();
            for r in &self.rules {
                let text = r.borrow().save_all();
                let mut words = text.split_whitespace();
                while let Some(w) = words.next() {
                    if w == "--match-set"
                        && let Some(name) = words.next()
                    {
                        in_use.insert(name.to_string());
                    }
                }
            }
            self.sets.in_use = in_use;
            self.sets.restore(input)
        }
    }
}

/// A node IPVS mode ran on (and iptables mode before it, its chains partly left): the
/// cleanup removes IPVS mode's rules, sets, virtual services and `kube-ipvs0`, keeps what
/// is not ours (an excluded service, a fwmark service, another ipset, another chain), and
/// a second cleanup finds nothing.
#[test]
fn cleanup_removes_what_ipvs_mode_left_and_nothing_else() {
    use std::cell::RefCell;
    use std::rc::Rc;

    use dataplane::ipvs::{Scheduler, Service};

    use super::cleanup::{cleanup, leftovers};
    use crate::render::iptables::{RenderOptions, render_iptables};

    let st = state(&[
        (
            port("web", Protocol::Tcp, "198.19.0.10", Some(30080)),
            vec!["198.18.64.2", "198.18.64.3"],
        ),
        (
            port("dns", Protocol::Udp, "198.19.0.53", None),
            vec!["198.18.64.4"],
        ),
        (port("empty", Protocol::Tcp, "198.19.0.20", None), vec![]),
    ]);
    let mut p = proxier();
    p.sync(&st, true).unwrap();
    // Someone else's: a service in --ipvs-exclude-cidrs, a fwmark service, a set, a chain.
    let foreign = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("198.19.250.1"),
        port: 80,
    };
    let fwmark = ServiceKey::Fwmark {
        family: Family::V4,
        mark: 7,
    };
    for k in [&foreign, &fwmark] {
        p.kernel
            .state
            .services
            .push(Service::new(k.clone(), Scheduler::Rr));
    }
    p.sets
        .sets
        .insert("OTHER".into(), ("hash:ip".into(), Default::default()));
    p.rules
        .restore("*filter\n:OTHER-CHAIN - [0:0]\n-A INPUT -j OTHER-CHAIN\nCOMMIT\n")
        .unwrap();
    // iptables mode's per-service chains for the same Service, jumping to KUBE-MARK-MASQ.
    let left = render_iptables(&st, &RenderOptions::default()).to_restore();
    p.rules.restore(&left).unwrap();
    assert!(p.rules.save_all().contains(":KUBE-SVC-"));
    assert!(p.kernel.state.services.len() > 4);

    let Fake {
        mut kernel,
        mut link,
        sets,
        rules,
        ..
    } = p;
    let rules = Rc::new(RefCell::new(rules));
    let mut sets = shared::Sets {
        sets,
        rules: vec![Rc::clone(&rules)],
    };
    let mut w = shared::Rules(Rc::clone(&rules));
    let mut writers: Vec<(String, &mut dyn RuleWriter)> = vec![("IPv4 fake".into(), &mut w)];
    assert!(leftovers(&mut link, &mut sets, &mut writers));

    let exclude = vec!["198.19.250.0/24".parse().unwrap()];
    let done = cleanup(
        Some(&mut kernel),
        &mut link,
        &mut sets,
        &mut writers,
        &exclude,
    );
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert!(done.link && !link.exists && link.vips.is_empty());
    assert_eq!(
        kernel
            .state
            .services
            .iter()
            .map(|s| s.key.clone())
            .collect::<Vec<_>>(),
        vec![foreign, fwmark],
        "only what is not ours stays"
    );
    assert_eq!(
        done.services.len(),
        4,
        "2 cluster IPs, 1 node port, 1 empty"
    );
    assert_eq!(sets.sets.sets.keys().collect::<Vec<_>>(), ["OTHER"]);
    assert!(done.sets.contains(&"KUBE-CLUSTER-IP".to_string()));
    let after = rules.borrow().save_all();
    assert!(!after.contains("KUBE-"), "{after}");
    assert!(after.contains("-A INPUT -j OTHER-CHAIN"), "{after}");
    assert_eq!(done.rules.len(), 1);
    assert!(done.rules[0].1.jump_rules >= 11, "{:?}", done.rules);

    // Nothing is left: no leftovers, and a second cleanup removes nothing.
    assert!(!leftovers(&mut link, &mut sets, &mut writers));
    let again = cleanup(
        Some(&mut kernel),
        &mut link,
        &mut sets,
        &mut writers,
        &exclude,
    );
    assert!(again.is_empty(), "{again:?}");
}

/// A node that never ran IPVS mode (iptables mode's rules only) shows no IPVS leftovers,
/// so a mode switch does not touch its IPVS table.
#[test]
fn iptables_mode_alone_is_not_an_ipvs_leftover() {
    use super::cleanup::leftovers;
    let st = state(&[(
        port("web", Protocol::Tcp, "198.19.0.10", Some(30080)),
        vec!["198.18.64.2"],
    )]);
    let mut w = FakeWriter::new(Family::V4);
    crate::apply::ensure_jump_rules(&mut w).unwrap();
    let text = crate::render::iptables::render_iptables(
        &st,
        &crate::render::iptables::RenderOptions::default(),
    )
    .to_restore();
    w.restore(&text).unwrap();
    let mut link = FakeLink::default();
    let mut sets = FakeSets::default();
    let mut writers: Vec<(String, &mut dyn RuleWriter)> = vec![("IPv4 fake".into(), &mut w)];
    assert!(!leftovers(&mut link, &mut sets, &mut writers));
    link.exists = true;
    assert!(leftovers(&mut link, &mut sets, &mut writers));
}

/// A set the rules still use cannot be destroyed (the fake refuses as the kernel does): the
/// failure is reported and the other steps still run.
#[test]
fn a_set_in_use_fails_its_step_only() {
    use super::cleanup::{IpvsCleanupError, cleanup};
    let st = state(&[(
        port("web", Protocol::Tcp, "198.19.0.10", None),
        vec!["198.18.64.2"],
    )]);
    let mut p = proxier();
    p.sync(&st, true).unwrap();
    p.sets.in_use.insert("KUBE-CLUSTER-IP".into());
    let mut writers: Vec<(String, &mut dyn RuleWriter)> = Vec::new();
    let done = cleanup(
        Some(&mut p.kernel),
        &mut p.link,
        &mut p.sets,
        &mut writers,
        &[],
    );
    assert!(
        matches!(
            done.errors.as_slice(),
            [IpvsCleanupError::Kernel {
                step: "ipset destroy",
                ..
            }]
        ),
        "{:?}",
        done.errors
    );
    assert!(p.sets.sets.contains_key("KUBE-CLUSTER-IP"));
    assert!(p.kernel.state.services.is_empty());
    assert!(done.link);
}

#[test]
fn a_flushed_table_is_seen_by_the_canaries_and_a_full_sync_restores_the_jumps() {
    use crate::sync::ModeProxier;
    let mut p = proxier();
    let st = state(&[(
        port("web", Protocol::Tcp, "198.19.0.10", Some(30080)),
        vec!["198.18.64.2"],
    )]);
    p.sync(&st, false).unwrap();
    assert!(ModeProxier::missing_canaries(&mut p).unwrap().is_empty());
    let jump = "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    assert!(p.rules.save("nat").unwrap().contains(jump));

    // someone flushes nat's built-in chains and deletes the canaries (iptables -F; -X)
    p.rules
        .restore(
            "*nat\n-F PREROUTING\n-F OUTPUT\n-X KUBE-PROXY-CANARY\nCOMMIT\n\
             *mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n",
        )
        .unwrap();
    assert_eq!(
        ModeProxier::missing_canaries(&mut p).unwrap(),
        ["mangle", "nat"]
    );
    // a partial sync rewrites IPVS mode's own chains but not the jumps into them
    let (a, _) = p.sync(&st, false).unwrap();
    assert!(!a.full);
    assert!(!p.rules.save("nat").unwrap().contains(jump));
    // the full sync a missing canary asks for puts back both
    let (a, _) = p.sync(&st, true).unwrap();
    assert!(a.full);
    assert!(p.rules.save("nat").unwrap().contains(jump));
    assert!(ModeProxier::missing_canaries(&mut p).unwrap().is_empty());
}
