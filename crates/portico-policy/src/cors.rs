//! Cross-origin resource sharing (the Fetch standard's CORS protocol) for a route: which
//! origins may call it from a browser, with which methods and headers, with credentials or
//! not, and for how long a browser may keep a preflight's answer.

/// A route's `cors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Origins allowed (`https://app.example`), or `*` for any (never with credentials).
    pub origins: Vec<String>,
    /// Methods a browser may use (upper case).
    pub methods: Vec<String>,
    /// Request headers a browser may send (lower case); CORS-safelisted ones need no listing.
    pub headers: Vec<String>,
    /// Whether a browser may send cookies or HTTP authentication.
    pub credentials: bool,
    /// How long a browser may keep a preflight's answer, in seconds.
    pub max_age: Option<u64>,
    /// Response headers a page may read besides the safelisted ones.
    pub expose: Vec<String>,
}

/// Request headers a browser sends without a preflight asking (Fetch, "CORS-safelisted
/// request-header"), as far as the names go.
const SAFELISTED: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

impl CorsPolicy {
    /// Whether a page from `origin` may call the route.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }

    /// The answer to a preflight from `origin` asking for `method` and `headers` (the
    /// `Access-Control-Request-Headers` list): its fields, or `None` when it is refused.
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        headers: &str,
    ) -> Option<Vec<(&'static str, String)>> {
        if !self.allows_origin(origin) || !self.methods.iter().any(|m| m == method) {
            return None;
        }
        let asked: Vec<String> = headers
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !asked
            .iter()
            .all(|h| SAFELISTED.contains(&h.as_str()) || self.headers.contains(h))
        {
            return None;
        }
        let mut out = self.origin_fields(origin);
        out.push(("Access-Control-Allow-Methods", self.methods.join(", ")));
        if !asked.is_empty() {
            out.push(("Access-Control-Allow-Headers", asked.join(", ")));
        }
        if let Some(age) = self.max_age {
            out.push(("Access-Control-Max-Age", age.to_string()));
        }
        Some(out)
    }

    /// The fields of an answer to a request from an allowed `origin`.
    pub fn response_fields(&self, origin: &str) -> Vec<(&'static str, String)> {
        let mut out = self.origin_fields(origin);
        if !self.expose.is_empty() {
            out.push(("Access-Control-Expose-Headers", self.expose.join(", ")));
        }
        out
    }

    fn origin_fields(&self, origin: &str) -> Vec<(&'static str, String)> {
        let any = self.origins.iter().any(|o| o == "*") && !self.credentials;
        let mut out = vec![(
            "Access-Control-Allow-Origin",
            if any {
                "*".to_string()
            } else {
                origin.to_string()
            },
        )];
        if !any {
            // The answer depends on the Origin: caches must keep one per origin.
            out.push(("Vary", "Origin".to_string()));
        }
        if self.credentials {
            out.push(("Access-Control-Allow-Credentials", "true".to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            origins: vec!["http://app.example".into()],
            methods: vec!["GET".into(), "PUT".into()],
            headers: vec!["x-auth-token".into()],
            credentials: true,
            max_age: Some(600),
            expose: vec!["X-Request-Id".into()],
        }
    }

    #[test]
    fn a_preflight_is_answered_only_for_what_is_allowed() {
        let p = policy();
        let ok = p
            .preflight("http://app.example", "PUT", "X-Auth-Token, content-type")
            .unwrap();
        assert!(ok.contains(&("Access-Control-Allow-Origin", "http://app.example".into())));
        assert!(ok.contains(&("Access-Control-Allow-Methods", "GET, PUT".into())));
        assert!(ok.contains(&(
            "Access-Control-Allow-Headers",
            "x-auth-token, content-type".into()
        )));
        assert!(ok.contains(&("Access-Control-Allow-Credentials", "true".into())));
        assert!(ok.contains(&("Access-Control-Max-Age", "600".into())));
        assert!(ok.contains(&("Vary", "Origin".into())));
        assert_eq!(p.preflight("http://evil.example", "PUT", ""), None);
        assert_eq!(p.preflight("http://app.example", "DELETE", ""), None);
        assert_eq!(p.preflight("http://app.example", "GET", "x-other"), None);
    }

    #[test]
    fn any_origin_is_star_without_credentials() {
        let p = CorsPolicy {
            origins: vec!["*".into()],
            credentials: false,
            ..policy()
        };
        assert!(p.allows_origin("http://anything.example"));
        assert_eq!(
            p.response_fields("http://anything.example"),
            vec![
                ("Access-Control-Allow-Origin", "*".to_string()),
                ("Access-Control-Expose-Headers", "X-Request-Id".to_string())
            ]
        );
    }
}
