//! One rule per typed match and target: parse -> model -> emit, as written and canonical
//! (the canonical column is what iptables-save printed for the same input, see the fixtures).

use dataplane::Family;
use dataplane::iptables::{Match, Rule, Target};

/// (family, input, emitted as written, canonical = iptables-save's form)
const CASES: &[(Family, &str, &str, &str)] = &[
    (
        Family::V4,
        "! -s 198.18.0.1/32 ! -i eth+ -o veth0 ! -p tcp -j ACCEPT",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-s 198.18.0.5/16 -d 198.18.0.0/255.0.255.0",
        "=",
        "-s 198.18.0.0/16 -d 198.0.0.0/255.0.255.0",
    ),
    (
        Family::V4,
        "-d 198.18.0.0/255.255.0.0",
        "=",
        "-d 198.18.0.0/16",
    ),
    (
        Family::V4,
        "-s 198.18.0.2 -j DROP",
        "=",
        "-s 198.18.0.2/32 -j DROP",
    ),
    (
        Family::V4,
        "-d 0.0.0.0/0 -o + -p all -j ACCEPT",
        "=",
        "-j ACCEPT",
    ),
    (Family::V4, "-f -j DROP", "=", "="),
    (Family::V4, "! -f -p 47", "=", "-p gre ! -f"),
    (
        Family::V6,
        "-s 2001:db8::/64 ! -d 2001:db8:1::/48",
        "=",
        "=",
    ),
    (
        Family::V6,
        "-s 2001:db8::/ffff:ffff:0:ffff:: -j RETURN",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p tcp -m tcp --sport 1000:2000 ! --dport 80 --tcp-flags SYN,RST,ACK SYN",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p tcp -m tcp ! --syn",
        "=",
        "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN",
    ),
    (
        Family::V4,
        "-p tcp --tcp-flags ALL NONE",
        "-p tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE",
        "-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE",
    ),
    (
        Family::V4,
        "-p udp --dport 53",
        "=",
        "-p udp -m udp --dport 53",
    ),
    (
        Family::V4,
        "-p udp -m udp --sport :100 --dport 1:",
        "-p udp -m udp --sport 0:100 --dport 1:65535",
        "=",
    ),
    (Family::V4, "-p sctp -m sctp --dport 80:90", "=", "="),
    (
        Family::V4,
        "-m tcp -p tcp -d 198.19.0.10 --dport 80 -j KUBE-SVC-X",
        "-m tcp --dport 80 -p tcp -d 198.19.0.10 -j KUBE-SVC-X",
        "-d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X",
    ),
    (
        Family::V4,
        "-p tcp -m multiport --dports 80,443,8000:8080",
        "=",
        "=",
    ),
    (Family::V4, "-p udp -m multiport ! --sports 1:2", "=", "="),
    (Family::V4, "-p tcp -m multiport --ports 22", "=", "="),
    (
        Family::V4,
        "-m comment --comment \"quote \\\"inner\\\" and back\\\\slash\"",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m comment --comment ns1/svc1:p80",
        "-m comment --comment \"ns1/svc1:p80\"",
        "=",
    ),
    (
        Family::V4,
        "-m comment --comment \"plain\"",
        "-m comment --comment plain",
        "=",
    ),
    (
        Family::V4,
        "-m statistic --mode random --probability 0.33333333349",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m statistic --mode random --probability 0.5000000000",
        "=",
        "-m statistic --mode random --probability 0.50000000000",
    ),
    (
        Family::V4,
        "-m statistic --mode random ! --probability 0.25",
        "=",
        "-m statistic --mode random ! --probability 0.25000000000",
    ),
    (
        Family::V4,
        "-m statistic --mode nth --every 3 --packet 1",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap",
        "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X",
        "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource",
    ),
    (
        Family::V4,
        "-m recent --update --seconds 5 --hitcount 3 --rttl --name foo --mask 255.255.255.255 --rdest",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m recent ! --rcheck --name X --mask 255.255.0.0 --rsource",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m recent --remove",
        "=",
        "-m recent --remove --name DEFAULT --mask 255.255.255.255 --rsource",
    ),
    (
        Family::V6,
        "-m recent --set --name V6",
        "=",
        "-m recent --set --name V6 --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource",
    ),
    (
        Family::V4,
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m mark --mark 16384/0xffffffff",
        "-m mark --mark 0x4000/0xffffffff",
        "-m mark --mark 0x4000",
    ),
    (Family::V4, "-m connmark ! --mark 0x1/0xff", "=", "="),
    (
        Family::V4,
        "-m conntrack --ctstate RELATED,ESTABLISHED",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m conntrack ! --ctstate DNAT,ESTABLISHED,RELATED",
        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT",
        "=",
    ),
    (
        Family::V4,
        "-m conntrack --ctstatus ASSURED,SEEN_REPLY --ctorigdst 198.19.0.10 --ctorigdstport 80 --ctorigsrc 198.18.0.0/16 --ctproto tcp",
        "-m conntrack --ctproto tcp --ctorigsrc 198.18.0.0/16 --ctorigdst 198.19.0.10 --ctorigdstport 80 --ctstatus SEEN_REPLY,ASSURED",
        "-m conntrack --ctproto 6 --ctorigsrc 198.18.0.0/16 --ctorigdst 198.19.0.10 --ctorigdstport 80 --ctstatus SEEN_REPLY,ASSURED",
    ),
    (
        Family::V4,
        "-m conntrack --ctrepldst 198.18.0.9/24 --ctreplsrc 198.18.0.8/32 --ctexpire 10:20 --ctdir REPLY",
        "-m conntrack --ctreplsrc 198.18.0.8/32 --ctrepldst 198.18.0.9/24 --ctexpire 10:20 --ctdir REPLY",
        "-m conntrack --ctreplsrc 198.18.0.8 --ctrepldst 198.18.0.9/24 --ctexpire 10:20 --ctdir REPLY",
    ),
    (Family::V4, "-m state --state NEW,ESTABLISHED", "=", "="),
    (Family::V4, "-m state ! --state INVALID", "=", "="),
    (
        Family::V4,
        "-m addrtype --src-type LOCAL,UNICAST ! --dst-type BROADCAST --limit-iface-in",
        "-m addrtype --src-type UNICAST,LOCAL ! --dst-type BROADCAST --limit-iface-in",
        "=",
    ),
    (
        Family::V4,
        "-m addrtype ! --dst-type LOCAL --limit-iface-out",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m addrtype --src-type BLACKHOLE,UNREACHABLE,PROHIBIT,ANYCAST,UNSPEC,THROW,NAT,XRESOLVE,MULTICAST",
        "-m addrtype --src-type UNSPEC,ANYCAST,MULTICAST,BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE",
        "=",
    ),
    (
        Family::V4,
        "-m set --match-set KUBE-CLUSTER-IP dst,dst",
        "=",
        "=",
    ),
    (Family::V4, "-m set ! --match-set KUBE-NETS src", "=", "="),
    (
        Family::V4,
        "-m set --match-set KUBE-LOOP-BACK dst,dst,src --return-nomatch ! --update-counters",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m physdev --physdev-in veth0 ! --physdev-out eth+ --physdev-is-bridged",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m physdev --physdev-is-bridged --physdev-is-out ! --physdev-is-in --physdev-out o --physdev-in i",
        "-m physdev ! --physdev-is-in --physdev-in i --physdev-is-out --physdev-out o --physdev-is-bridged",
        "=",
    ),
    (
        Family::V4,
        "-m iprange --src-range 198.18.0.1-198.18.0.9 ! --dst-range 198.18.1.1-198.18.1.9",
        "=",
        "=",
    ),
    (
        Family::V6,
        "-m iprange --src-range 2001:db8::1-2001:db8::9",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p icmp -m icmp --icmp-type echo-reply",
        "=",
        "-p icmp -m icmp --icmp-type 0",
    ),
    (
        Family::V4,
        "-p icmp -m icmp --icmp-type port-unreachable",
        "=",
        "-p icmp -m icmp --icmp-type 3/3",
    ),
    (Family::V4, "-p icmp -m icmp ! --icmp-type any", "=", "="),
    (
        Family::V4,
        "-p icmp --icmp-type 11",
        "=",
        "-p icmp -m icmp --icmp-type 11",
    ),
    (
        Family::V6,
        "-p ipv6-icmp -m icmp6 --icmpv6-type 1/4",
        "=",
        "=",
    ),
    (
        Family::V6,
        "-p icmpv6 -m icmp6 ! --icmpv6-type neighbour-solicitation",
        "=",
        "-p ipv6-icmp -m icmp6 ! --icmpv6-type 135",
    ),
    (
        Family::V4,
        "-m owner --uid-owner 0 --gid-owner 10-20 --socket-exists",
        "-m owner --socket-exists --uid-owner 0 --gid-owner 10-20",
        "=",
    ),
    (Family::V4, "-m owner ! --uid-owner 1000", "=", "="),
    (
        Family::V4,
        "-m owner --gid-owner 5 --suppl-groups",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-m limit --limit 5/min --limit-burst 10",
        "=",
        "=",
    ),
    (Family::V4, "-m limit", "=", "-m limit --limit 3/hour"),
    (
        Family::V4,
        "-m limit --limit 10/second --limit-burst 5",
        "=",
        "-m limit --limit 10/sec",
    ),
    (Family::V4, "-m length --length 100:200", "=", "="),
    (Family::V4, "-m length ! --length 1500", "=", "="),
    (Family::V4, "-m pkttype ! --pkt-type broadcast", "=", "="),
    (Family::V4, "-m ttl --ttl-eq 64", "=", "="),
    (Family::V4, "-m ttl ! --ttl-eq 3", "=", "="),
    (Family::V4, "-m ttl --ttl-lt 2", "=", "="),
    (Family::V6, "-m hl --hl-gt 254", "=", "="),
    // targets
    (
        Family::V4,
        "-p tcp -j REJECT --reject-with tcp-reset",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-j REJECT",
        "=",
        "-j REJECT --reject-with icmp-port-unreachable",
    ),
    (
        Family::V6,
        "-j REJECT",
        "=",
        "-j REJECT --reject-with icmp6-port-unreachable",
    ),
    (
        Family::V4,
        "-j REJECT --reject-with icmp-admin-prohibited",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-j REJECT --reject-with host-prohib",
        "-j REJECT --reject-with icmp-host-prohibited",
        "=",
    ),
    (
        Family::V6,
        "-j REJECT --reject-with icmp6-adm-prohibited",
        "=",
        "=",
    ),
    (Family::V4, "-j QUEUE", "=", "="),
    (Family::V4, "-g KUBE-FORWARD", "=", "="),
    (
        Family::V4,
        "-p tcp -j DNAT --to-destination 198.18.64.3-198.18.64.5:80-90 --random --persistent",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p tcp -j DNAT --to-destination :8080",
        "=",
        "=",
    ),
    (
        Family::V6,
        "-p tcp -j DNAT --to-destination [2001:db8:40::2]:80",
        "=",
        "=",
    ),
    (
        Family::V6,
        "-p udp -j DNAT --to-destination 2001:db8:40::5",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p tcp -j SNAT --to-source 198.18.0.1:1000-2000 --persistent --random",
        "-p tcp -j SNAT --to-source 198.18.0.1:1000-2000 --random --persistent",
        "=",
    ),
    (
        Family::V4,
        "-j SNAT --to-source 198.18.0.1 --random-fully",
        "=",
        "=",
    ),
    (
        Family::V4,
        "-p tcp -j MASQUERADE --to-ports 1000-2000 --random",
        "=",
        "=",
    ),
    (Family::V4, "-j MASQUERADE --random-fully", "=", "="),
    (Family::V4, "-p udp -j REDIRECT --to-ports 8080", "=", "="),
    (
        Family::V4,
        "-j MARK --or-mark 0x4000",
        "=",
        "-j MARK --set-xmark 0x4000/0x4000",
    ),
    (
        Family::V4,
        "-j MARK --xor-mark 0x4000",
        "=",
        "-j MARK --set-xmark 0x4000/0x0",
    ),
    (
        Family::V4,
        "-j MARK --and-mark 0x10",
        "=",
        "-j MARK --set-xmark 0x0/0xffffffef",
    ),
    (
        Family::V4,
        "-j MARK --set-mark 0x10",
        "=",
        "-j MARK --set-xmark 0x10/0xffffffff",
    ),
    (Family::V4, "-j MARK --set-xmark 0x10/0xff", "=", "="),
    (
        Family::V4,
        "-j CONNMARK --save-mark",
        "=",
        "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
    ),
    (
        Family::V4,
        "-j CONNMARK --restore-mark --mask 0xff",
        "-j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
        "=",
    ),
    (
        Family::V4,
        "-j CONNMARK --and-mark 0x1",
        "=",
        "-j CONNMARK --set-xmark 0x0/0xfffffffe",
    ),
    (
        Family::V4,
        "-j LOG --log-prefix \"pfx: \" --log-level 4",
        "=",
        "-j LOG --log-prefix \"pfx: \"",
    ),
    (
        Family::V4,
        "-j LOG --log-level debug --log-prefix \"a b\" --log-uid",
        "-j LOG --log-prefix \"a b\" --log-level debug --log-uid",
        "-j LOG --log-prefix \"a b\" --log-level 7 --log-uid",
    ),
    (Family::V4, "-j NOTRACK", "=", "="),
    (Family::V4, "-j CT --notrack", "=", "="),
    (Family::V4, "-j CT --zone 5", "=", "="),
    (Family::V4, "-j TRACE", "=", "="),
    (Family::V4, "", "=", "="),
];

#[test]
fn each_typed_match_and_target_parses_emits_and_canonicalises() {
    for (family, input, written, canonical) in CASES {
        let rule = Rule::parse_spec(*family, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        for m in rule.matches() {
            assert!(
                !matches!(m, Match::Unknown { .. }),
                "{input}: {m:?} left raw"
            );
        }
        assert!(
            !matches!(rule.target(), Some(Target::Unknown { .. })),
            "{input}: target left raw"
        );
        let written = if *written == "=" { input } else { written };
        assert_eq!(rule.spec(*family), *written, "as written: {input}");
        let canonical = if *canonical == "=" {
            written
        } else {
            canonical
        };
        let c = rule.canonical(*family);
        assert_eq!(c.spec(*family), *canonical, "canonical: {input}");
        // The canonical form parses back to itself.
        let again = Rule::parse_spec(*family, canonical).unwrap();
        assert_eq!(again.canonical(*family), c, "canonical reparse: {input}");
    }
}

#[test]
fn unknown_modules_and_options_stay_raw_and_print_back() {
    for spec in [
        "-m hashlimit --hashlimit-upto 5/sec --hashlimit-name foo -j ACCEPT",
        "-p tcp -m tcp --tcp-option 2 -j ACCEPT",
        "-m conntrack --ctstate NEW --ctfoo bar",
        "-m comment --comment a --comment b",
        "-m statistic --mode random --probability 1.5",
        "-j CT --zone-orig 3",
        "-j NFLOG --nflog-group 5 --nflog-prefix \"x y\"",
        "-j DNAT --to-destination nonsense",
        "-m foo ! --bar -j ACCEPT",
    ] {
        let rule = Rule::parse_spec(Family::V4, spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(rule.spec(Family::V4), spec);
        let raw = rule
            .matches()
            .iter()
            .any(|m| matches!(m, Match::Unknown { .. }))
            || matches!(rule.target(), Some(Target::Unknown { .. }));
        assert!(raw, "{spec} should be kept raw");
    }
}

#[test]
fn a_bare_name_is_a_jump_and_extension_names_are_targets() {
    let r = Rule::parse_spec(Family::V4, "-j KUBE-SVC-X").unwrap();
    assert_eq!(r.target(), Some(&Target::Jump("KUBE-SVC-X".into())));
    let r = Rule::parse_spec(Family::V4, "-j NFLOG").unwrap();
    assert!(matches!(r.target(), Some(Target::Unknown { .. })));
}

#[test]
fn bad_specs_name_the_word_and_what_was_expected() {
    for (spec, word, expected) in [
        ("-s 198.18.0.300 -j ACCEPT", 2, "an address[/mask]"),
        ("-p nosuchproto", 2, "a protocol name or number"),
        ("-j", 2, "a value"),
        ("-j ACCEPT -j DROP", 3, "a single -j or -g"),
        ("! ! -s 198.18.0.1", 2, "an option after \"!\""),
        (
            "--dport 80",
            1,
            "an option of a loaded module (-m MODULE before it)",
        ),
        ("-m", 2, "a value"),
        ("stray", 1, "an option"),
        ("-m comment --comment \"open", 0, "a closing double quote"),
    ] {
        let e = Rule::parse_spec(Family::V4, spec).unwrap_err();
        assert_eq!(e.expected, expected, "{spec}: {e}");
        if word > 0 {
            assert_eq!(e.word, Some(word), "{spec}: {e}");
        }
        assert!(e.to_string().starts_with("line 1"), "{e}");
    }
}
