//! The routing table: the router built from the routes' path templates, once by validation
//! (which reports every overlap) and again by the gateway (which serves from it).

use portico_http::{Method, MethodSet};

use crate::read::{Origin, Reader};
use crate::routes::Route;

/// The routing table: routes grouped by path template (routes sharing one pool their methods
/// for 405 and OPTIONS), and a router from a path to its group. Built once by validation,
/// which reports every overlap, and again by the gateway, which serves from it.
#[derive(Clone, Debug)]
pub struct RouteTable {
    /// Path → index into `groups`.
    pub router: matchit::Router<usize>,
    /// Routes sharing one template.
    pub groups: Vec<RouteGroup>,
}

/// Routes that share one path template.
#[derive(Clone, Debug)]
pub struct RouteGroup {
    /// Indices into the route list, in file order.
    pub routes: Vec<usize>,
    /// The union of their methods.
    pub methods: MethodSet,
}

/// Why a route cannot join the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Index of the route that overlaps an earlier one.
    pub route: usize,
    /// What is wrong.
    pub message: String,
}

impl RouteTable {
    /// Groups `routes`. Two routes may share a template only with disjoint methods; templates
    /// that differ must not be ambiguous to the router. Every overlap is returned.
    pub fn build(routes: &[Route]) -> Result<RouteTable, Vec<Overlap>> {
        let mut router = matchit::Router::new();
        let mut groups: Vec<RouteGroup> = Vec::new();
        let mut sources: Vec<&str> = Vec::new();
        let mut overlaps = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            if let Some(g) = sources.iter().position(|s| *s == route.path.source) {
                let earlier = groups[g].routes.iter().find_map(|&j| {
                    let shared: Vec<&str> = route
                        .methods
                        .allowed()
                        .filter(|m| *m != Method::Options && routes[j].methods.allows(*m))
                        .map(Method::as_str)
                        .collect();
                    (!shared.is_empty()).then_some((j, shared))
                });
                if let Some((j, shared)) = earlier {
                    overlaps.push(Overlap {
                        route: i,
                        message: format!(
                            "overlaps route `{}` (routes[{j}]): both take {} on `{}`",
                            routes[j].name,
                            shared.join(", "),
                            route.path.source
                        ),
                    });
                    continue;
                }
                groups[g].routes.push(i);
                groups[g].methods = groups[g].methods.union(route.methods);
                continue;
            }
            let g = groups.len();
            let inserted = route
                .path
                .patterns
                .iter()
                .try_for_each(|p| router.insert(p.clone(), g));
            if let Err(e) = inserted {
                overlaps.push(Overlap {
                    route: i,
                    message: format!("`{}` conflicts with another route: {e}", route.path.source),
                });
                continue;
            }
            groups.push(RouteGroup {
                routes: vec![i],
                methods: route.methods,
            });
            sources.push(&route.path.source);
        }
        if overlaps.is_empty() {
            Ok(RouteTable { router, groups })
        } else {
            Err(overlaps)
        }
    }
}

/// Every overlap between routes, at the route that overlaps an earlier one.
pub(crate) fn check_overlaps(r: &mut Reader, routes: &[(Origin, Route)]) {
    let list: Vec<Route> = routes.iter().map(|(_, route)| route.clone()).collect();
    if let Err(overlaps) = RouteTable::build(&list) {
        for o in overlaps {
            r.problem_at(&routes[o.route].0, "path", o.message);
        }
    }
}
