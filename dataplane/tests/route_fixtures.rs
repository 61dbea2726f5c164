//! Round trips and lookups on `ip -j` output captured from real namespaces by
//! `scripts/fixtures/capture-route.sh` (see each fixture's header lines).

mod common;

use common::{SCENARIOS, compare, documents, load, parse_args, read_fixture};
use dataplane::Family;
use dataplane::route::{InterfaceAddrs, Link, Route, RouteState, Rule};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture JSON")
}

#[test]
fn every_fixture_says_how_it_was_captured() {
    for s in SCENARIOS {
        for f in [
            "link.json",
            "addr.json",
            "route4.json",
            "route6.json",
            "rule4.json",
            "rule6.json",
            "settings.json",
            "get.json",
        ] {
            let (header, _) = read_fixture(s, f);
            assert!(
                header
                    .first()
                    .is_some_and(|h| h.contains("capture-route.sh"))
                    && header.iter().any(|h| h.contains("iproute2")),
                "{s}/{f}: header {header:?}"
            );
        }
    }
}

#[test]
fn documents_re_emit_exactly_what_ip_printed() {
    for s in SCENARIOS {
        let d = documents(s);
        let links = Link::parse_doc(&d.link).unwrap();
        let emitted = Value::Array(links.iter().map(Link::to_value).collect());
        assert_eq!(emitted, json(&d.link), "{s}: link");
        let addrs = InterfaceAddrs::parse_doc(&d.addr).unwrap();
        let emitted = Value::Array(addrs.iter().map(InterfaceAddrs::to_value).collect());
        assert_eq!(emitted, json(&d.addr), "{s}: addr");
        for (family, text) in [(Family::V4, &d.route4), (Family::V6, &d.route6)] {
            let routes = Route::parse_doc(family, text).unwrap();
            for (i, (r, orig)) in routes
                .iter()
                .zip(json(text).as_array().unwrap())
                .enumerate()
            {
                assert_eq!(&r.to_value(), orig, "{s}: route {family} [{i}]");
            }
        }
        for (family, text) in [(Family::V4, &d.rule4), (Family::V6, &d.rule6)] {
            let rules = Rule::parse_doc(family, text).unwrap();
            let emitted = Value::Array(rules.iter().map(Rule::to_value).collect());
            assert_eq!(emitted, json(text), "{s}: rule {family}");
        }
    }
}

#[test]
fn state_json_round_trips() {
    for s in SCENARIOS {
        let state = load(s);
        let text = serde_json::to_string(&state).unwrap();
        let back: RouteState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state, "{s}");
        let docs = state.to_documents();
        let again = RouteState::parse(&dataplane::route::IpDocuments {
            link: &docs.link.to_string(),
            addr: &docs.addr.to_string(),
            route4: &docs.route4.to_string(),
            route6: &docs.route6.to_string(),
            rule4: &docs.rule4.to_string(),
            rule6: &docs.rule6.to_string(),
        })
        .unwrap();
        assert_eq!(
            RouteState {
                settings: state.settings.clone(),
                ..again
            },
            state,
            "{s}: documents"
        );
    }
}

#[test]
fn lookups_agree_with_the_captured_ip_route_get_answers() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in SCENARIOS {
        let state = load(s);
        let (_, body) = read_fixture(s, "get.json");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let answer = json(line);
            let args = answer["args"].as_str().unwrap();
            let lookup = state.lookup(&parse_args(args));
            checked += 1;
            if let Err(e) = compare(&state, &lookup, &answer) {
                failures.push(format!("{s}: ip route get {args}: {e}"));
            }
        }
    }
    assert!(checked >= 80, "only {checked} captured flows");
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
