//! Reports: a table for people, JSON (one object per row, the fields docs/probe.md lists) and
//! JUnit XML (one test case per row) for CI systems.

use serde_json::json;

use crate::{Outcome, Verdict};

/// How to print the verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text, one row a line, then the evidence of what did not pass.
    Table,
    /// A JSON array of objects: `code`, `check`, `outcome`, `why`, `request`, `response`.
    Json,
    /// JUnit XML: one `testcase` per row, `failure` for `fail`, `skipped` for the others
    /// that did not pass.
    Junit,
}

/// The report of `verdicts` in `format`; `color` adds ANSI colours to the table.
pub fn render(verdicts: &[Verdict], format: Format, color: bool) -> String {
    match format {
        Format::Table => table(verdicts, color),
        Format::Json => {
            let rows: Vec<serde_json::Value> = verdicts
                .iter()
                .map(|v| {
                    json!({
                        "code": v.code,
                        "check": v.check,
                        "outcome": v.outcome.as_str(),
                        "why": v.why,
                        "request": v.request,
                        "response": v.response,
                    })
                })
                .collect();
            let mut out = serde_json::to_string_pretty(&rows).unwrap_or_default();
            out.push('\n');
            out
        }
        Format::Junit => junit(verdicts),
    }
}

fn table(verdicts: &[Verdict], color: bool) -> String {
    let paint = |o: Outcome| {
        let (code, text) = match o {
            Outcome::Pass => ("32", "pass"),
            Outcome::Fail => ("31", "FAIL"),
            Outcome::NotApplicable => ("90", "n/a"),
            Outcome::Unknown => ("33", "unknown"),
        };
        if color {
            format!("\u{1b}[{code}m{text:<7}\u{1b}[0m")
        } else {
            format!("{text:<7}")
        }
    };
    let mut out = String::new();
    for v in verdicts {
        let code = if v.code == 0 {
            "all".to_string()
        } else {
            v.code.to_string()
        };
        out.push_str(&format!(
            "{code:<4} {} {}: {}\n",
            paint(v.outcome),
            v.check,
            v.why
        ));
    }
    for v in verdicts.iter().filter(|v| v.outcome != Outcome::Pass) {
        if v.request.is_none() && v.response.is_none() {
            continue;
        }
        out.push_str(&format!("\n{} — {}\n", v.check, v.why));
        if let Some(r) = &v.request {
            for l in r.lines() {
                out.push_str(&format!("  > {l}\n"));
            }
        }
        if let Some(r) = &v.response {
            for l in r.lines() {
                out.push_str(&format!("  < {l}\n"));
            }
        }
    }
    let count = |o| verdicts.iter().filter(|v| v.outcome == o).count();
    out.push_str(&format!(
        "\n{} passed, {} failed, {} not applicable, {} unknown\n",
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::NotApplicable),
        count(Outcome::Unknown)
    ));
    out
}

/// XML text with the five special characters escaped.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn junit(verdicts: &[Verdict]) -> String {
    let failures = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Fail)
        .count();
    let skipped = verdicts
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::NotApplicable | Outcome::Unknown))
        .count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"portico-probe\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        verdicts.len()
    );
    for v in verdicts {
        let name = xml(&format!("{} {}", v.code, v.check));
        out.push_str(&format!(
            "  <testcase classname=\"contract\" name=\"{name}\">"
        ));
        let evidence = xml(&format!(
            "{}\n{}",
            v.request.as_deref().unwrap_or(""),
            v.response.as_deref().unwrap_or("")
        ));
        match v.outcome {
            Outcome::Pass => {}
            Outcome::Fail => out.push_str(&format!(
                "<failure message=\"{}\">{evidence}</failure>",
                xml(&v.why)
            )),
            Outcome::NotApplicable | Outcome::Unknown => out.push_str(&format!(
                "<skipped message=\"{}: {}\"/>",
                v.outcome.as_str(),
                xml(&v.why)
            )),
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
