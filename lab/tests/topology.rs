//! `Lab::up` builds a topology file for real: the example rack, plus extra addresses,
//! sysctls and routes. Needs root.

use std::time::Duration;

use lab::{EchoSpec, Greeting, HostKind, Lab, Topology};

const T: Duration = Duration::from_secs(2);

#[test]
fn the_example_rack_comes_up_and_routes() {
    lab::require_root().unwrap();
    let topo = Topology::from_yaml(include_str!("../topologies/rack.yaml")).unwrap();
    let lab = Lab::up(&topo).unwrap();
    assert_eq!(lab.name(), "rack");
    let kinds: Vec<(String, HostKind)> = lab
        .hosts()
        .iter()
        .map(|h| (h.name().to_string(), h.kind()))
        .collect();
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    let client = lab.get("client").unwrap();
    let pod = lab.get("node2-pod2").unwrap();
    assert_eq!(pod.node().unwrap().name(), "node2");
    let _echo = pod
        .echo_server(EchoSpec {
            tcp: vec![80],
            http: vec![8080],
            ..Default::default()
        })
        .unwrap();
    // client -> tor -> node2 -> pod, both families
    let g = Greeting::parse(&client.tcp_connect(pod.ipv4().unwrap(), 80, T).unwrap()).unwrap();
    assert_eq!(
        (g.host.as_str(), g.client.ip()),
        ("node2-pod2", client.ipv4().unwrap().into())
    );
    let g = Greeting::parse(&client.tcp_connect(pod.ipv6().unwrap(), 80, T).unwrap()).unwrap();
    assert_eq!(g.host, "node2-pod2");
    assert_eq!(
        client
            .http_get(pod.ipv4().unwrap(), 8080, "/x", T)
            .unwrap()
            .status,
        200
    );
    // pod to pod across nodes
    lab.get("node1-pod1")
        .unwrap()
        .ping(pod.ipv4().unwrap(), T)
        .unwrap();
}

#[test]
fn extra_addresses_sysctls_and_routes_are_applied() {
    lab::require_root().unwrap();
    let topo = Topology::from_yaml(
        "name: extras
routers:
  - name: r1
    addresses: [\"198.19.255.1/32\", \"2001:db8:ff::1/128 dev lo\"]
    sysctls: {net.ipv4.conf.all.rp_filter: \"2\"}
hosts:
  - name: h1
    routes: [\"198.19.255.0/24 via 198.18.0.1\"]
segments:
  - {name: lan, members: [r1, h1]}
",
    )
    .unwrap();
    let lab = Lab::up(&topo).unwrap();
    let (r1, h1) = (lab.get("r1").unwrap(), lab.get("h1").unwrap());
    assert!(r1.addrs().contains(&"198.19.255.1/32".parse().unwrap()));
    assert!(
        r1.ip(&["-br", "addr", "show", "lo"])
            .unwrap()
            .contains("2001:db8:ff::1/128")
    );
    assert_eq!(
        r1.sh("cat /proc/sys/net/ipv4/conf/all/rp_filter")
            .unwrap()
            .trim(),
        "2"
    );
    assert!(
        h1.ip(&["route"])
            .unwrap()
            .contains("198.19.255.0/24 via 198.18.0.1")
    );
    h1.ping(std::net::Ipv4Addr::new(198, 19, 255, 1), T)
        .unwrap();
    // the router is the node network's .1, the host its .101
    assert_eq!(r1.ipv4().unwrap().to_string(), "198.18.0.1");
    assert_eq!(h1.ipv4().unwrap().to_string(), "198.18.0.101");
}

#[test]
fn addresses_outside_the_plan_are_refused() {
    lab::require_root().unwrap();
    let lab = Lab::new("guard").unwrap();
    let h = lab.host("h1").unwrap();
    let e = h
        .add_addr("lo", "10.1.2.3/32".parse().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("outside the lab's plan"), "{e}");
    assert!(h.add_route("10.0.0.0/8 dev lo").is_err());
    let opts = lab::LinkOpts {
        subnet4: Some("192.168.1.0/24".parse().unwrap()),
        ..Default::default()
    };
    let r = lab.router("r1").unwrap();
    assert!(lab.link_with(&h, &r, &opts).is_err());
    assert!(
        lab.node_with(
            "n1",
            &lab::HostOpts {
                addr4: Some("172.16.0.1/24".parse().unwrap()),
                ..Default::default()
            }
        )
        .is_err()
    );
    // nothing was configured in the kernel
    assert!(!h.ip(&["addr"]).unwrap().contains("10.1.2.3"));
    assert!(
        h.sysctl("kernel.hostname", "x").is_err(),
        "only net.* sysctls"
    );
}
