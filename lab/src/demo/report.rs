//! What the demo tells its user: progress lines, checks (passed or failed, with the data
//! behind them), blocks of other programs' output (`birdc show protocols`, `diag trace`), and a
//! summary. Printed as text, or as JSON lines (`lab demo --json`) for scripts and the system
//! test, with the text going to stderr then.
//!
//! ```text
//!   step(3, "it works")      ==> 3. it works                 {"event":"step","step":3,...}
//!   check(Check{ok,..})        ok   ClusterIP ...            {"event":"check","id":"clusterip",...}
//!   block("birdc ...", text)     | BIRD 2.x ready.           {"event":"output","title":..,"text":..}
//! ```

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

/// One outcome the demo asserts.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The step it belongs to (1 to 5).
    pub step: u8,
    /// A stable id (`bgp_established`, `clusterip`, `diag_trace_reject`, ...).
    pub id: String,
    /// Whether it holds.
    pub ok: bool,
    /// One line for people.
    pub text: String,
    /// The data it was decided on (states, routes, endpoints, diag's verdict).
    pub detail: Value,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The lab's id.
    pub lab: String,
    /// Checks that held.
    pub passed: usize,
    /// Checks that did not.
    pub failed: usize,
    /// Seconds from start to the summary.
    pub seconds: f64,
    /// Whether the lab was left up (`--keep`).
    pub kept: bool,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text on stdout.
    Text,
    /// JSON lines on stdout, text on stderr.
    Json,
}

/// Prints the report and keeps the checks.
#[derive(Debug)]
pub struct Reporter {
    format: Format,
    checks: Vec<Check>,
}

impl Reporter {
    /// A reporter printing in `format`.
    pub fn new(format: Format) -> Reporter {
        Reporter {
            format,
            checks: Vec::new(),
        }
    }

    /// Every check so far.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    fn text(&self, line: &str) {
        // a reader that went away (a closed pipe) must not stop the demo or its teardown
        match self.format {
            Format::Text => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{line}");
                let _ = o.flush();
            }
            Format::Json => {
                let mut o = std::io::stderr().lock();
                let _ = writeln!(o, "{line}");
            }
        }
    }

    fn json(&self, v: &Value) {
        if self.format == Format::Json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
        }
    }

    /// A step begins.
    pub fn step(&mut self, step: u8, title: &str) {
        self.text(&format!("\n==> {step}. {title}"));
        self.json(&json!({"event": "step", "step": step, "title": title}));
    }

    /// A progress line.
    pub fn progress(&mut self, text: &str) {
        self.text(&format!("    {text}"));
        self.json(&json!({"event": "progress", "text": text}));
    }

    /// A process the demo started (for `--json` readers that check it is gone afterwards).
    pub fn process(&mut self, host: &str, name: &str, pid: i32) {
        self.json(&json!({"event": "process", "host": host, "name": name, "pid": pid}));
    }

    /// Another program's output, shown indented under a title.
    pub fn block(&mut self, title: &str, text: &str) {
        let mut s = format!("    $ {title}");
        for l in text.trim_end().lines() {
            s.push_str("\n    | ");
            s.push_str(l);
        }
        self.text(&s);
        self.json(&json!({"event": "output", "title": title, "text": text}));
    }

    /// A check; returns whether it held.
    pub fn check(&mut self, c: Check) -> bool {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        self.text(&format!("  {mark} {}", c.text));
        let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
        v["event"] = json!("check");
        self.json(&v);
        let ok = c.ok;
        self.checks.push(c);
        ok
    }

    /// Any other event with its fields (`lab`, `teardown`).
    pub fn event(&mut self, event: &str, text: &str, mut fields: Value) {
        self.text(&format!("    {text}"));
        fields["event"] = json!(event);
        fields["text"] = json!(text);
        self.json(&fields);
    }

    /// The summary line(s).
    pub fn summary(&mut self, s: &Summary) {
        let verdict = if s.failed == 0 {
            "every check passed"
        } else {
            "SOME CHECKS FAILED"
        };
        let mut lines = format!(
            "\n==> summary: {verdict}: {} passed, {} failed, {:.1} s (lab {})",
            s.passed, s.failed, s.seconds, s.lab
        );
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            lines.push_str(&format!("\n  {mark} [{}] {}", c.step, c.text));
        }
        self.text(&lines);
        let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
        v["event"] = json!("summary");
        self.json(&v);
    }
}
