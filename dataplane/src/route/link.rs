//! Network interfaces as `ip -j -d link show` prints them.
//!
//! ```text
//!   [{"ifindex":2,"ifname":"eth0","flags":["UP",..],"linkinfo":{"info_kind":"veth"},..}, ..]
//!        | Link::parse_doc                                  ^ Link::to_value
//!        v                                                  |
//!   Vec<Link> { ifindex, ifname, flags, mtu, kind, master, peer.., extra }
//! ```
//!
//! The routing lookup needs only the name, index, the `UP` / `LOWER_UP` flags, the group, the
//! master and the kind; the rest is kept (typed where cheap, raw otherwise) so a re-emit loses
//! nothing.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::json::{Document, Obj, ParseError, parse_array};

/// The kind of a link (`linkinfo.info_kind`, `ip link add ... type KIND`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `veth`: one end of a virtual Ethernet pair.
    Veth,
    /// `bridge`.
    Bridge,
    /// `vxlan`.
    Vxlan,
    /// `dummy`.
    Dummy,
    /// `vlan` (802.1Q sub-interface).
    Vlan,
    /// `macvlan`.
    Macvlan,
    /// `ipvlan`.
    Ipvlan,
    /// `vrf`: an L3 master device with its own routing table.
    Vrf,
    /// `bond`.
    Bond,
    /// `tun`.
    Tun,
    /// `wireguard`.
    Wireguard,
    /// `ipip`.
    Ipip,
    /// `gre`.
    Gre,
    /// Any other kind, kept as printed.
    Other(String),
}

impl LinkKind {
    /// Parses an `info_kind` word.
    pub fn parse(s: &str) -> LinkKind {
        match s {
            "veth" => LinkKind::Veth,
            "bridge" => LinkKind::Bridge,
            "vxlan" => LinkKind::Vxlan,
            "dummy" => LinkKind::Dummy,
            "vlan" => LinkKind::Vlan,
            "macvlan" => LinkKind::Macvlan,
            "ipvlan" => LinkKind::Ipvlan,
            "vrf" => LinkKind::Vrf,
            "bond" => LinkKind::Bond,
            "tun" => LinkKind::Tun,
            "wireguard" => LinkKind::Wireguard,
            "ipip" => LinkKind::Ipip,
            "gre" => LinkKind::Gre,
            other => LinkKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Vxlan => "vxlan",
            LinkKind::Dummy => "dummy",
            LinkKind::Vlan => "vlan",
            LinkKind::Macvlan => "macvlan",
            LinkKind::Ipvlan => "ipvlan",
            LinkKind::Vrf => "vrf",
            LinkKind::Bond => "bond",
            LinkKind::Tun => "tun",
            LinkKind::Wireguard => "wireguard",
            LinkKind::Ipip => "ipip",
            LinkKind::Gre => "gre",
            LinkKind::Other(s) => s,
        })
    }
}

/// A network interface (`ip link show`).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// Interface flags as printed (`UP`, `LOWER_UP`, `NO-CARRIER`, `LOOPBACK`, ...).
    pub flags: Vec<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// RFC 2863 operational state (`UP`, `DOWN`, `UNKNOWN`, `LOWERLAYERDOWN`, ...).
    pub operstate: Option<String>,
    /// Link-layer type (`ether`, `loopback`, `none`, ...).
    pub link_type: Option<String>,
    /// Link-layer address.
    pub address: Option<String>,
    /// The master device (a bridge, bond or VRF) this one is enslaved to.
    pub master: Option<String>,
    /// Interface group (`default` = 0, a number, or a name from `/etc/iproute2/group`).
    pub group: Option<String>,
    /// The peer or lower device by name (`link`: a veth peer in the same namespace).
    pub link: Option<String>,
    /// The peer or lower device by index (`link_index`), possibly in another namespace.
    pub link_index: Option<u32>,
    /// The namespace id of the peer (`link_netnsid`), when it lives in another namespace.
    pub link_netnsid: Option<u32>,
    /// Kind (`linkinfo.info_kind`); `None` for physical devices and loopback.
    pub kind: Option<LinkKind>,
    /// Kind of the port role when enslaved (`linkinfo.info_slave_kind`: `bridge`, `bond`, `vrf`).
    pub slave_kind: Option<String>,
    /// The rest of `linkinfo` (`info_data`, `info_slave_data`, ...), kept raw.
    pub linkinfo_extra: Map<String, Value>,
    /// Fields this crate does not interpret, kept raw.
    pub extra: Map<String, Value>,
}

impl Link {
    /// A link with just a name, index and flags (for hand-built states and tests).
    pub fn new(ifindex: u32, ifname: &str, flags: &[&str]) -> Link {
        Link {
            ifindex,
            ifname: ifname.to_string(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            mtu: None,
            operstate: None,
            link_type: None,
            address: None,
            master: None,
            group: None,
            link: None,
            link_index: None,
            link_netnsid: None,
            kind: None,
            slave_kind: None,
            linkinfo_extra: Map::new(),
            extra: Map::new(),
        }
    }

    /// Whether the interface is administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Whether the interface has carrier (`IFF_LOWER_UP`). Loopback always has.
    pub fn has_carrier(&self) -> bool {
        self.flags
            .iter()
            .any(|f| f == "LOWER_UP" || f == "LOOPBACK")
    }

    /// Whether this is the loopback device.
    pub fn is_loopback(&self) -> bool {
        self.flags.iter().any(|f| f == "LOOPBACK")
    }

    /// The interface group number (`default` = 0); `None` for a name this crate cannot map.
    pub fn group_id(&self) -> Option<u32> {
        match self.group.as_deref() {
            None | Some("default") => Some(0),
            Some(g) => g.parse().ok(),
        }
    }

    /// For a VRF device, the routing table it owns (`linkinfo.info_data.table`).
    pub fn vrf_table(&self) -> Option<u32> {
        if self.kind != Some(LinkKind::Vrf) {
            return None;
        }
        let table = self.linkinfo_extra.get("info_data")?.get("table")?;
        table.as_u64().and_then(|n| u32::try_from(n).ok())
    }

    /// Parses the output of `ip -j -d link show` (plain `ip -j link show` works too).
    pub fn parse_doc(text: &str) -> Result<Vec<Link>, ParseError> {
        Link::from_values(parse_array(Document::Link, text)?)
    }

    /// Parses the elements of an already decoded `ip -j link show` array.
    pub fn from_values(items: Vec<Value>) -> Result<Vec<Link>, ParseError> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Link::from_value(Obj::new(Document::Link, i, v)?))
            .collect()
    }

    fn from_value(mut o: Obj) -> Result<Link, ParseError> {
        let ifindex = o.req_u32("ifindex")?;
        let ifname = o.req_str("ifname")?;
        let flags = o.opt_strings("flags")?.unwrap_or_default();
        let mtu = o.opt_u32("mtu")?;
        let operstate = o.opt_str("operstate")?;
        let link_type = o.opt_str("link_type")?;
        let address = o.opt_str("address")?;
        let master = o.opt_str("master")?;
        let group = o.opt_str("group")?;
        let link = o.opt_str("link")?;
        let link_index = o.opt_u32("link_index")?;
        let link_netnsid = o.opt_u32("link_netnsid")?;
        let (kind, slave_kind, linkinfo_extra) = match o.take("linkinfo") {
            None => (None, None, Map::new()),
            Some(v) => {
                let mut li = Obj::nested(o.doc(), o.index(), o.path("linkinfo"), v)?;
                let kind = li.opt_str("info_kind")?.map(|k| LinkKind::parse(&k));
                let slave = li.opt_str("info_slave_kind")?;
                (kind, slave, li.rest())
            }
        };
        Ok(Link {
            ifindex,
            ifname,
            flags,
            mtu,
            operstate,
            link_type,
            address,
            master,
            group,
            link,
            link_index,
            link_netnsid,
            kind,
            slave_kind,
            linkinfo_extra,
            extra: o.rest(),
        })
    }

    /// The object `ip -j -d link show` prints for this link.
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("ifindex".into(), self.ifindex.into());
        m.insert("ifname".into(), self.ifname.clone().into());
        m.insert("flags".into(), self.flags.clone().into());
        let opt = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        opt(&mut m, "mtu", self.mtu.map(Value::from));
        opt(&mut m, "operstate", self.operstate.clone().map(Value::from));
        opt(&mut m, "link_type", self.link_type.clone().map(Value::from));
        opt(&mut m, "address", self.address.clone().map(Value::from));
        opt(&mut m, "master", self.master.clone().map(Value::from));
        opt(&mut m, "group", self.group.clone().map(Value::from));
        opt(&mut m, "link", self.link.clone().map(Value::from));
        opt(&mut m, "link_index", self.link_index.map(Value::from));
        opt(&mut m, "link_netnsid", self.link_netnsid.map(Value::from));
        if self.kind.is_some() || self.slave_kind.is_some() || !self.linkinfo_extra.is_empty() {
            let mut li = self.linkinfo_extra.clone();
            opt(
                &mut li,
                "info_kind",
                self.kind.as_ref().map(|k| k.to_string().into()),
            );
            opt(
                &mut li,
                "info_slave_kind",
                self.slave_kind.clone().map(Value::from),
            );
            m.insert("linkinfo".into(), Value::Object(li));
        }
        Value::Object(m)
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VETH: &str = r#"[{"ifindex":5,"link":"vd","ifname":"vc","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP","M-DOWN"],"mtu":1500,"qdisc":"noqueue","master":"br0","operstate":"LOWERLAYERDOWN","group":"5","link_type":"ether","address":"4e:9d:bc:ec:6a:da","linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"disabled"}},"num_tx_queues":2}]"#;

    #[test]
    fn parses_flags_kind_master_and_keeps_the_rest() {
        let links = Link::parse_doc(VETH).unwrap();
        let l = &links[0];
        assert_eq!((l.ifindex, l.ifname.as_str()), (5, "vc"));
        assert!(l.is_up() && !l.has_carrier());
        assert_eq!(l.kind, Some(LinkKind::Veth));
        assert_eq!(l.slave_kind.as_deref(), Some("bridge"));
        assert_eq!(l.master.as_deref(), Some("br0"));
        assert_eq!(l.group_id(), Some(5));
        assert_eq!(l.extra.get("qdisc"), Some(&Value::from("noqueue")));
        let original: Value = serde_json::from_str(VETH).unwrap();
        assert_eq!(Value::Array(vec![l.to_value()]), original);
    }

    #[test]
    fn errors_name_the_element_and_field() {
        let e = Link::parse_doc(r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":"2","ifname":"x"}]"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`ip -j -d link show`[1]: field `ifindex`: expected an unsigned integer in range, found \"2\""
        );
        let e = Link::parse_doc(r#"[{"ifindex":1}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`ip -j -d link show`[0]: missing field `ifname` (a string)"
        );
        let e = Link::parse_doc(r#"[{"ifindex":1,"ifname":"a","linkinfo":{"info_kind":7}}]"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("field `linkinfo.info_kind`: expected a string")
        );
    }
}
