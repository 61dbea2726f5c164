//! Helpers shared by the route tests: loading captured fixtures and comparing a
//! [`Lookup`] with what `ip -j route get` answered.

#![allow(dead_code, unreachable_pub)]

pub mod node;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use dataplane::route::{
    Flow, IpDocuments, Lookup, Outcome, RouteSettings, RouteState, Rule, strip_capture_header,
};
use dataplane::{Family, Protocol};
use serde_json::Value;

/// The fixture directory of a scenario.
pub fn fixture_dir(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/route")
        .join(scenario)
}

/// The scenarios captured by scripts/fixtures/capture-route.sh.
pub const SCENARIOS: &[&str] = &["minimal", "node", "policy"];

/// The JSON body of a fixture file (capture header stripped) and its header lines.
pub fn read_fixture(scenario: &str, file: &str) -> (Vec<String>, String) {
    let path = fixture_dir(scenario).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (header, body) = strip_capture_header(&text);
    (
        header.iter().map(|s| s.to_string()).collect(),
        body.to_string(),
    )
}

/// The six documents of a scenario.
pub fn documents(scenario: &str) -> IpDocuments<String> {
    let f = |name: &str| read_fixture(scenario, name).1;
    IpDocuments {
        link: f("link.json"),
        addr: f("addr.json"),
        route4: f("route4.json"),
        route6: f("route6.json"),
        rule4: f("rule4.json"),
        rule6: f("rule6.json"),
    }
}

/// The state of a scenario, with its captured sysctls.
pub fn load(scenario: &str) -> RouteState {
    let d = documents(scenario);
    let docs = IpDocuments {
        link: d.link.as_str(),
        addr: d.addr.as_str(),
        route4: d.route4.as_str(),
        route6: d.route6.as_str(),
        rule4: d.rule4.as_str(),
        rule6: d.rule6.as_str(),
    };
    let mut state = RouteState::parse(&docs).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let settings: RouteSettings =
        serde_json::from_str(&read_fixture(scenario, "settings.json").1).expect("settings.json");
    state.settings = settings;
    state
}

/// Parses `ip route get` arguments (`DST [from S] [iif D] [oif D] [mark M] [tos T]
/// [ipproto P] [sport N] [dport N] [uid U]`) into a flow.
pub fn parse_args(args: &str) -> Flow {
    let mut words = args.split_whitespace();
    let dst: IpAddr = words.next().expect("dst").parse().expect("dst address");
    let mut flow = Flow::to(dst);
    let num = |s: &str| -> u32 {
        match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).expect("hex"),
            None => s.parse().expect("number"),
        }
    };
    while let Some(k) = words.next() {
        let v = words
            .next()
            .unwrap_or_else(|| panic!("{args}: {k} without value"));
        flow = match k {
            "from" => flow.from(v.parse().expect("from address")),
            "iif" => flow.iif(v),
            "oif" => flow.oif(v),
            "mark" => flow.mark(num(v)),
            "tos" => flow.tos(num(v) as u8),
            "ipproto" => flow.proto(v.parse::<Protocol>().expect("protocol")),
            "sport" => flow.sport(num(v) as u16),
            "dport" => flow.dport(num(v) as u16),
            "uid" => flow.uid(num(v)),
            other => panic!("{args}: unknown key {other}"),
        };
    }
    flow
}

fn ip_field(v: &Value, key: &str) -> Option<IpAddr> {
    v.get(key)?.as_str()?.parse().ok()
}

/// Checks `lookup` against one `ip -j route get` answer: the route type, output device and
/// gateway (for multipath: the kernel's pick must be one of our next hops), the source
/// address, the table, or the same error text.
pub fn compare(state: &RouteState, lookup: &Lookup, answer: &Value) -> Result<(), String> {
    let outcome = &lookup.outcome;
    if let Some(err) = answer.get("error").and_then(Value::as_str) {
        return match outcome.errno() {
            Some(e) if e.message() == err => Ok(()),
            _ => Err(format!("kernel: error {err:?}; model: {outcome:?}")),
        };
    }
    let out = answer
        .get("out")
        .and_then(|o| o.get(0))
        .ok_or("answer has neither out nor error")?;
    if let Some(e) = outcome.errno() {
        return Err(format!(
            "kernel: route {out}; model: error {e} ({outcome:?})"
        ));
    }
    let kind = out.get("type").and_then(Value::as_str).unwrap_or("unicast");
    let model_kind = outcome
        .route_type()
        .map(|t| t.to_string())
        .unwrap_or_default();
    if kind != model_kind {
        return Err(format!("kernel: type {kind} ({out}); model: {outcome:?}"));
    }
    let dev = out.get("dev").and_then(Value::as_str).unwrap_or("");
    let gateway = ip_field(out, "gateway").or_else(|| {
        out.get("via")
            .and_then(|v| v.get("host"))
            .and_then(Value::as_str)
            .and_then(|h| h.parse().ok())
    });
    let prefsrc = ip_field(out, "prefsrc");
    let v6_with_from = lookup.flow.dst.is_ipv6() && lookup.flow.src.is_some();
    // (device, gateway, source) of each next hop the model offers.
    type ModelHop = (String, Option<IpAddr>, Option<IpAddr>);
    let model_dev: Vec<ModelHop> = match outcome {
        Outcome::Unicast { hops, .. } => hops
            .iter()
            .map(|h| (h.dev.clone(), h.gateway, h.src))
            .collect(),
        Outcome::Local { dev, src, .. }
        | Outcome::Broadcast { dev, src, .. }
        | Outcome::Multicast { dev, src, .. }
        | Outcome::Anycast { dev, src, .. } => vec![(dev.clone(), None, *src)],
        other => return Err(format!("kernel: route {out}; model: {other:?}")),
    };
    let hop = model_dev
        .iter()
        .find(|(d, g, _)| d == dev && (kind != "unicast" || *g == gateway))
        .ok_or_else(|| {
            format!("kernel: dev {dev} gateway {gateway:?} ({out}); model hops: {model_dev:?}")
        })?;
    if let Some(p) = prefsrc
        && !v6_with_from
        && hop.2 != Some(p)
    {
        return Err(format!(
            "kernel: src {p} ({out}); model: {:?} ({outcome:?})",
            hop.2
        ));
    }
    let table = out.get("table").and_then(Value::as_str);
    let model_table = lookup.table().map(|t| t.to_string());
    match (table, model_table.as_deref()) {
        (Some(t), Some(m)) if t == m => {}
        (None, None) | (None, Some("main")) => {}
        // Without custom IPv4 rules the kernel keeps local and main in one trie
        // (fib_trie "merged" tables) and reports local-table hits as main.
        (None, Some("local")) if lookup.flow.dst.is_ipv4() && !has_custom_rules(state) => {}
        (t, m) if matches!(outcome, Outcome::Unicast { route: None, .. }) && t.is_none() => {
            let _ = m;
        }
        (t, m) => return Err(format!("kernel: table {t:?}; model: table {m:?} ({out})")),
    }
    Ok(())
}

/// Whether the state has IPv4 rules other than the defaults (0 local, 32766 main, 32767 default).
fn has_custom_rules(state: &RouteState) -> bool {
    let defaults = Rule::defaults(Family::V4);
    state.rules(Family::V4).any(|r| !defaults.contains(r))
}
