//! Plans: what a project has paid for. A plan's `quota` is a prepaid number of requests per
//! calendar period (UTC); when a project has spent it, its requests get 402 until the next
//! period begins.
//!
//! ```yaml
//! plans:
//!   - name: basic
//!     quota: {requests: 100000, period: month}   # or day
//!     rate_limits: [{key: project, rate: 100/s}] # on every route, for its projects
//! projects:
//!   - name: demo
//!     plan: basic                                # a project without a plan has no quota
//! ```

use crate::read::{Reader, join};
use crate::yaml::Node;

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Unique name; projects name their plan.
    pub name: String,
    /// The prepaid requests per period, if the plan limits them.
    pub quota: Option<Quota>,
    /// Rate limits on every request of its projects, on every route (`rate_limits`, as a
    /// route's `rate_limit`).
    pub rate_limits: Vec<crate::rate_limits::RateLimit>,
}

/// A prepaid number of requests per calendar period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// How many requests a project may make in one period.
    pub requests: u64,
    /// The period, in UTC.
    pub period: QuotaPeriod,
}

/// A calendar period in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// From midnight to midnight.
    Day,
    /// From the first of the month to the first of the next.
    Month,
}

impl QuotaPeriod {
    /// Its name in the file and in the admin API.
    pub fn name(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }

    /// The period of that name.
    pub fn parse(s: &str) -> Option<QuotaPeriod> {
        match s {
            "day" => Some(QuotaPeriod::Day),
            "month" => Some(QuotaPeriod::Month),
            _ => None,
        }
    }

    /// The period holding the instant `unix_seconds`: when it began and when the next one
    /// begins, in seconds since the Unix epoch.
    pub fn bounds(self, unix_seconds: i64) -> (i64, i64) {
        const DAY: i64 = 86_400;
        let days = unix_seconds.div_euclid(DAY);
        match self {
            QuotaPeriod::Day => (days * DAY, (days + 1) * DAY),
            QuotaPeriod::Month => {
                let (y, m, _) = portico_http::civil::civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    portico_http::civil::days_from_civil(y, m, 1) * DAY,
                    portico_http::civil::days_from_civil(ny, nm, 1) * DAY,
                )
            }
        }
    }
}

/// The plan a project has when none is named: no quota.
pub const DEFAULT_PLAN: &str = "free";

const PLAN_KEYS: &[&str] = &["name", "description", "quota", "rate_limits"];
const QUOTA_KEYS: &[&str] = &["requests", "period"];

/// Reads `plans`.
pub(crate) fn read_plans(r: &mut Reader, node: &Node) -> Option<Vec<Plan>> {
    let items = r.seq(node, "plans")?;
    let mut out: Vec<Plan> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("plans[{i}]");
        match read_plan(r, item, &path) {
            Some(p) if out.iter().any(|o| o.name == p.name) => {
                r.problem(
                    item,
                    &join(&path, "name"),
                    format!("plan `{}` is defined twice", p.name),
                );
                ok = false;
            }
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_plan(r: &mut Reader, node: &Node, path: &str) -> Option<Plan> {
    let f = r.map(node, path, PLAN_KEYS)?;
    let name = crate::access::name_at(r, node, &f, path);
    if let Some(n) = f.get("description") {
        r.string(n, &join(path, "description"))?;
    }
    let quota = match f.get("quota") {
        None => Some(None),
        Some(n) => read_quota(r, n, &join(path, "quota")).map(Some),
    };
    let rate_limits = match f.get("rate_limits") {
        None => Some(Vec::new()),
        Some(n) => crate::rate_limits::read_rate_limits(r, n, &join(path, "rate_limits")),
    };
    Some(Plan {
        name: name?,
        quota: quota?,
        rate_limits: rate_limits?,
    })
}

fn read_quota(r: &mut Reader, node: &Node, path: &str) -> Option<Quota> {
    let f = r.map(node, path, QUOTA_KEYS)?;
    let requests = match f.get("requests") {
        None => {
            r.missing(node, path, "requests");
            None
        }
        Some(n) => match r.uint(n, &join(path, "requests"))? {
            0 => {
                r.problem(
                    n,
                    &join(path, "requests"),
                    "`requests` is a whole number above 0",
                );
                None
            }
            v => Some(v),
        },
    };
    let period = match f.get("period") {
        None => {
            r.missing(node, path, "period");
            None
        }
        Some(n) => r.string(n, &join(path, "period")).and_then(|s| {
            let p = QuotaPeriod::parse(s);
            if p.is_none() {
                r.problem(n, &join(path, "period"), "`period` is `day` or `month`");
            }
            p
        }),
    };
    Some(Quota {
        requests: requests?,
        period: period?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: i64, d: i64) -> i64 {
        portico_http::civil::days_from_civil(y, m, d) * 86_400
    }

    #[test]
    fn a_month_runs_from_the_first_to_the_first_in_utc() {
        let mid = at(2026, 11, 26) + 9 * 3600;
        assert_eq!(
            QuotaPeriod::Month.bounds(mid),
            (at(2026, 11, 1), at(2026, 12, 1))
        );
        assert_eq!(
            QuotaPeriod::Month.bounds(at(2026, 12, 31) + 86_399),
            (at(2026, 12, 1), at(2027, 1, 1))
        );
        // The first second of a month is in it, the last of the one before is not.
        assert_eq!(QuotaPeriod::Month.bounds(at(2027, 3, 1)).0, at(2027, 3, 1));
        assert_eq!(
            QuotaPeriod::Month.bounds(at(2027, 3, 1) - 1),
            (at(2027, 2, 1), at(2027, 3, 1))
        );
    }

    #[test]
    fn a_day_runs_from_midnight_to_midnight_in_utc() {
        assert_eq!(
            QuotaPeriod::Day.bounds(at(2028, 2, 29) + 1),
            (at(2028, 2, 29), at(2028, 3, 1))
        );
        // Before 1970 too.
        assert_eq!(QuotaPeriod::Day.bounds(-1), (-86_400, 0));
    }
}
