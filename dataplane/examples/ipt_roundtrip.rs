//! Parses iptables-save files given on the command line and reports whether `to_save()`
//! reproduces each exactly (first line skipped when it starts with `# captured`).
use dataplane::Family;
use dataplane::iptables::Ruleset;

fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).expect("read");
        let fam = if path.contains("ip6") || path.contains("6-") {
            Family::V6
        } else {
            Family::V4
        };
        match Ruleset::parse(fam, &text) {
            Ok(rs) => {
                let out = rs.to_save();
                for t in &rs.tables {
                    for c in t.chains() {
                        for r in &c.rules {
                            for m in &r.matches {
                                if let dataplane::iptables::Match::Unknown { module, args } = m {
                                    println!("  unknown match {module} {args:?}");
                                }
                            }
                            if let Some(dataplane::iptables::Target::Unknown { name, args }) =
                                &r.target
                            {
                                println!("  unknown target {name} {args:?}");
                            }
                        }
                    }
                }
                if out == text {
                    println!("{path}: exact");
                } else {
                    println!("{path}: DIFFERS");
                    for (a, b) in text.lines().zip(out.lines()) {
                        if a != b {
                            println!("  in : {a}\n  out: {b}");
                        }
                    }
                }
            }
            Err(e) => println!("{path}: {e}"),
        }
    }
}
