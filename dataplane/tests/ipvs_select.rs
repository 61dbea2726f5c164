//! The tracer's IPVS step as tables: which service a packet hits, and each real server's share
//! of new connections by scheduler, weight, flags and thresholds, with the assumptions made.

use std::net::IpAddr;

use dataplane::ipvs::{
    ConnCounts, Exclusion, IpvsAssumption, IpvsState, Listing, Scheduler, Selection, bucket_shares,
};
use dataplane::{CtState, Packet, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP SYN from a pod to `dst:port` arriving on eth0.
fn syn(dst: &str, port: u16) -> Packet {
    Packet::tcp(ip("198.18.65.2"), ip(dst), port).arriving_on("eth0")
}

/// `(server address, share)` of each candidate, shares rounded to 1/1000.
fn shares(sel: &Selection<'_>) -> Vec<(String, f64)> {
    sel.candidates
        .iter()
        .map(|c| {
            (
                c.server.addr.to_string(),
                (c.share * 1000.0).round() / 1000.0,
            )
        })
        .collect()
}

fn table(lines: &str) -> IpvsState {
    IpvsState::from_save(lines).unwrap()
}

struct Case {
    name: &'static str,
    save: &'static str,
    /// (server, share) in service order
    want: &'static [(&'static str, f64)],
    unreachable: f64,
    /// Debug names of the assumptions expected, in order
    assumptions: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "rr splits evenly",
        save: "-A -t 198.19.0.10:80 -s rr\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 5\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.5)],
        unreachable: 0.0,
        assumptions: &[],
    },
    Case {
        name: "wrr by weight, weight 0 takes nothing new",
        save: "-A -t 198.19.0.10:80 -s wrr\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 3\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.4:8080 -m -w 0\n",
        want: &[
            ("198.18.64.2", 0.75),
            ("198.18.64.3", 0.25),
            ("198.18.64.4", 0.0),
        ],
        unreachable: 0.0,
        assumptions: &[],
    },
    Case {
        name: "every server terminating: port unreachable",
        save: "-A -t 198.19.0.10:80 -s rr\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 0\n",
        want: &[("198.18.64.2", 0.0)],
        unreachable: 1.0,
        assumptions: &[],
    },
    Case {
        name: "no servers: port unreachable",
        save: "-A -t 198.19.0.10:80 -s rr\n",
        want: &[],
        unreachable: 1.0,
        assumptions: &[],
    },
    Case {
        name: "wlc: long-run split by weight",
        save: "-A -t 198.19.0.10:80 -s wlc\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 3\n",
        want: &[("198.18.64.2", 0.25), ("198.18.64.3", 0.75)],
        unreachable: 0.0,
        assumptions: &["LoadDependent"],
    },
    Case {
        name: "lc: long-run split even",
        save: "-A -t 198.19.0.10:80 -s lc\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 3\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.5)],
        unreachable: 0.0,
        assumptions: &["LoadDependent"],
    },
    Case {
        name: "sh: buckets by weight",
        save: "-A -t 198.19.0.10:80 -s sh -b sh-port\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 3\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1\n",
        want: &[("198.18.64.2", 0.75), ("198.18.64.3", 0.25)],
        unreachable: 0.0,
        assumptions: &["Hashed"],
    },
    Case {
        name: "sh without fallback: a terminating server's buckets are refused",
        save: "-A -t 198.19.0.10:80 -s sh\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 0\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.0)],
        unreachable: 0.5,
        assumptions: &["Hashed"],
    },
    Case {
        name: "sh with sh-fallback: its buckets go to the others",
        save: "-A -t 198.19.0.10:80 -s sh -b sh-fallback\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 0\n",
        want: &[("198.18.64.2", 1.0), ("198.18.64.3", 0.0)],
        unreachable: 0.0,
        assumptions: &["Hashed"],
    },
    Case {
        name: "dh: buckets, hashed by destination",
        save: "-A -t 198.19.0.10:80 -s dh\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.5)],
        unreachable: 0.0,
        assumptions: &["Hashed"],
    },
    Case {
        name: "mh: by weight, terminating servers leave the table",
        save: "-A -t 198.19.0.10:80 -s mh -b mh-port\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.4:8080 -m -w 0\n",
        want: &[
            ("198.18.64.2", 0.5),
            ("198.18.64.3", 0.5),
            ("198.18.64.4", 0.0),
        ],
        unreachable: 0.0,
        assumptions: &["Hashed"],
    },
    Case {
        name: "fo: all to the first heaviest",
        save: "-A -t 198.19.0.10:80 -s fo\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 5\n\
               -a -t 198.19.0.10:80 -r 198.18.64.4:8080 -m -w 5\n",
        want: &[
            ("198.18.64.2", 0.0),
            ("198.18.64.3", 1.0),
            ("198.18.64.4", 0.0),
        ],
        unreachable: 0.0,
        assumptions: &[],
    },
    Case {
        name: "persistence and an unknown scheduler",
        save: "-A -t 198.19.0.10:80 -s twosies -p 10800\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 9\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.5)],
        unreachable: 0.0,
        assumptions: &["Persistence", "UnknownScheduler"],
    },
    Case {
        name: "thresholds without connection counts",
        save: "-A -t 198.19.0.10:80 -s rr\n\
               -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1 -x 10\n\
               -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1 --frob\n",
        want: &[("198.18.64.2", 0.5), ("198.18.64.3", 0.5)],
        unreachable: 0.0,
        assumptions: &["UnknownOptions", "ThresholdsUnknown"],
    },
];

fn kind(a: &IpvsAssumption) -> String {
    let dbg = format!("{a:?}");
    dbg.split([' ', '{', '(']).next().unwrap().to_string()
}

#[test]
fn shares_by_scheduler() {
    for c in CASES {
        let t = table(c.save);
        let sel = t.select(&syn("198.19.0.10", 80)).expect(c.name);
        let want: Vec<(String, f64)> = c.want.iter().map(|(a, s)| (a.to_string(), *s)).collect();
        assert_eq!(shares(&sel), want, "{}", c.name);
        assert!(
            (sel.unreachable - c.unreachable).abs() < 1e-9,
            "{}: unreachable {}",
            c.name,
            sel.unreachable
        );
        let total: f64 = sel.candidates.iter().map(|c| c.share).sum::<f64>() + sel.unreachable;
        assert!(
            (total - 1.0).abs() < 1e-9,
            "{}: shares sum to {total}",
            c.name
        );
        let kinds: Vec<String> = sel.assumptions.iter().map(kind).collect();
        assert_eq!(kinds, c.assumptions, "{}", c.name);
        for cand in &sel.candidates {
            assert_eq!(cand.share == 0.0, cand.excluded.is_some(), "{}", c.name);
        }
    }
}

#[test]
fn exclusions_carry_their_reason() {
    let t = table(
        "-A -t 198.19.0.10:80 -s fo\n\
         -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 0\n\
         -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 5 -x 10\n\
         -a -t 198.19.0.10:80 -r 198.18.64.4:8080 -m -w 2\n\
         -a -t 198.19.0.10:80 -r 198.18.64.5:8080 -m -w 1\n",
    );
    // counts from a listing: .3 is at its upper threshold
    let listing = Listing::parse(
        "Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.19.0.10:80 fo\n\
         \x20 -> 198.18.64.2:8080             Masq    0      3          0\n\
         \x20 -> 198.18.64.3:8080             Masq    5      6          4\n\
         \x20 -> 198.18.64.4:8080             Masq    2      0          0\n\
         \x20 -> 198.18.64.5:8080             Masq    1      0          0\n",
    )
    .unwrap();
    let mut t = t;
    assert!(t.merge_listing(&listing).is_empty());
    assert_eq!(
        t.services[0].servers[1].conns,
        Some(ConnCounts {
            active: 6,
            inactive: 4,
            persistent: None
        })
    );
    let sel = t.select(&syn("198.19.0.10", 80)).unwrap();
    let why: Vec<Option<Exclusion>> = sel.candidates.iter().map(|c| c.excluded).collect();
    assert_eq!(
        why,
        [
            Some(Exclusion::ZeroWeight),
            Some(Exclusion::Overloaded),
            None,
            Some(Exclusion::NotChosen)
        ]
    );
    assert!(sel.assumptions.is_empty(), "{:?}", sel.assumptions);
    assert_eq!(sel.chosen().count(), 1);
}

#[test]
fn lookup_follows_the_kernels_order() {
    let t = table(
        "-A -t 198.19.0.10:80 -s rr\n\
         -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
         -A -t 198.19.0.10:0 -s rr -p 60\n\
         -a -t 198.19.0.10:0 -r 198.18.64.3:0 -g -w 1\n\
         -A -f 7 -s rr\n\
         -a -f 7 -r 198.18.64.4:0 -m -w 1\n\
         -A -u [2001:db8:ff::10]:53 -s rr\n\
         -a -u [2001:db8:ff::10]:53 -r [2001:db8:64:1::2]:5353 -m -w 1\n",
    );
    let key = |p: &Packet| t.lookup(p).map(|s| s.key.to_string());
    assert_eq!(
        key(&syn("198.19.0.10", 80)).as_deref(),
        Some("TCP 198.19.0.10:80")
    );
    // another port: the port-zero service
    assert_eq!(
        key(&syn("198.19.0.10", 443)).as_deref(),
        Some("TCP 198.19.0.10:0")
    );
    // a fwmark service wins over the address
    assert_eq!(
        key(&syn("198.19.0.10", 80).with_mark(7)).as_deref(),
        Some("FWM 7")
    );
    // the mark of another family does not match
    let v6 = Packet::udp(ip("2001:db8:64:2::2"), ip("2001:db8:ff::10"), 53).with_mark(7);
    assert_eq!(key(&v6).as_deref(), Some("UDP [2001:db8:ff::10]:53"));
    // UDP to a TCP service, ICMP, another address: nothing
    assert_eq!(
        key(&Packet::udp(ip("198.18.65.2"), ip("198.19.0.10"), 80)),
        None
    );
    assert_eq!(
        key(&Packet::ping(ip("198.18.65.2"), ip("198.19.0.10"))),
        None
    );
    assert_eq!(key(&syn("198.19.0.11", 80)), None);
    assert_eq!(
        key(&Packet::with_proto(
            ip("198.18.65.2"),
            ip("198.19.0.10"),
            Protocol::Sctp,
            80
        )),
        None
    );
}

#[test]
fn an_established_packet_is_decided_by_its_connection() {
    let t = table("-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n");
    let sel = t
        .select(&syn("198.19.0.10", 80).with_ct_state(CtState::Established))
        .unwrap();
    assert_eq!(sel.assumptions, [IpvsAssumption::ExistingConnection]);
    assert_eq!(
        sel.assumptions[0].to_string(),
        "packet of an existing connection: the IPVS connection table (not modelled) picks the server"
    );
    assert_eq!(sel.service.scheduler, Scheduler::Rr);
}

#[test]
fn sh_table_buckets_follow_weights_in_turn() {
    let t = table(
        "-A -t 198.19.0.10:80 -s sh\n\
         -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 100\n\
         -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1\n\
         -a -t 198.19.0.10:80 -r 198.18.64.4:8080 -m -w 0\n",
    );
    // cycles of 100 + 1 + 1 buckets: two full cycles (204), then 52 more to the first
    assert_eq!(bucket_shares(&t.services[0].servers), [252, 2, 2]);
}
