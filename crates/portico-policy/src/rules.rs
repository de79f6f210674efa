//! A route's `policy`: ordered `allow` and `deny` rules over who calls (consumer, roles) and
//! what it asks (method, path). The first rule whose every condition holds decides; when none
//! does, the request is allowed if the policy has no `allow` rule (a deny list) and refused
//! otherwise (an allow list).

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `allow` (true) or `deny` (false).
    pub allow: bool,
    /// Consumer names; empty: any caller, anonymous included.
    pub consumers: Vec<String>,
    /// Roles, of which the caller must have one; empty: any.
    pub roles: Vec<String>,
    /// Methods, upper case; empty: any.
    pub methods: Vec<String>,
    /// Paths: exact, or a prefix when ending in `*`; empty: any.
    pub paths: Vec<String>,
}

/// What a rule is matched against.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The caller's consumer name, if the caller proved who it is.
    pub consumer: Option<&'a str>,
    /// The caller's roles, comma-separated (empty for none).
    pub roles: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The request's path, normalised.
    pub path: &'a str,
}

impl Rule {
    fn matches(&self, s: &Subject<'_>) -> bool {
        let consumer = self.consumers.is_empty()
            || s.consumer
                .is_some_and(|c| self.consumers.iter().any(|x| x == c));
        let role = self.roles.is_empty()
            || s.roles
                .split(',')
                .filter(|r| !r.is_empty())
                .any(|r| self.roles.iter().any(|x| x == r));
        let method = self.methods.is_empty() || self.methods.iter().any(|m| m == s.method);
        let path = self.paths.is_empty()
            || self.paths.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => s.path.starts_with(prefix),
                None => s.path == p,
            });
        consumer && role && method && path
    }
}

/// Whether `rules` let `subject` through.
pub fn allows(rules: &[Rule], subject: &Subject<'_>) -> bool {
    match rules.iter().find(|r| r.matches(subject)) {
        Some(rule) => rule.allow,
        None => !rules.iter().any(|r| r.allow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        consumers: &[&str],
        roles: &[&str],
        methods: &[&str],
        paths: &[&str],
    ) -> Rule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            allow,
            consumers: v(consumers),
            roles: v(roles),
            methods: v(methods),
            paths: v(paths),
        }
    }

    fn who<'a>(
        consumer: Option<&'a str>,
        roles: &'a str,
        method: &'a str,
        path: &'a str,
    ) -> Subject<'a> {
        Subject {
            consumer,
            roles,
            method,
            path,
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = [
            rule(false, &["mallory"], &[], &[], &[]),
            rule(true, &[], &["admin"], &[], &[]),
            rule(true, &[], &["member"], &["GET"], &["/v1/*"]),
        ];
        assert!(allows(
            &rules,
            &who(Some("alice"), "member", "GET", "/v1/x")
        ));
        assert!(!allows(
            &rules,
            &who(Some("alice"), "member", "DELETE", "/v1/x")
        ));
        assert!(!allows(
            &rules,
            &who(Some("alice"), "member", "GET", "/v2/x")
        ));
        assert!(allows(
            &rules,
            &who(Some("root"), "ops,admin", "DELETE", "/v2/x")
        ));
        // Denied first, whatever the roles.
        assert!(!allows(
            &rules,
            &who(Some("mallory"), "admin", "GET", "/v1/x")
        ));
        // An anonymous caller has no consumer and no role.
        assert!(!allows(&rules, &who(None, "", "GET", "/v1/x")));
    }

    #[test]
    fn a_deny_list_lets_the_rest_through_and_an_empty_policy_everything() {
        let rules = [rule(false, &[], &[], &["DELETE"], &["/v1/admin"])];
        assert!(!allows(&rules, &who(Some("a"), "", "DELETE", "/v1/admin")));
        assert!(allows(&rules, &who(Some("a"), "", "DELETE", "/v1/admin/x")));
        assert!(allows(&rules, &who(None, "", "GET", "/v1/admin")));
        assert!(allows(&[], &who(None, "", "DELETE", "/")));
    }
}
