//! The contract as data: the published status-code table and the catalog of error codes.
//!
//! Everything Portico says about a status code comes from here: the `portico codes` command,
//! `docs/errors.md`, `docs/contract.md`, the `title` of every error body, and the closure rule
//! (a generated response can only carry a status that has a row in [`STATUS_TABLE`]). Keeping
//! the table in code, not prose, lets tests hold the docs and the behaviour to it.

use std::fmt;

/// Whether a row of the table is produced by a mechanism today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// A real mechanism produces it; `proof` names the tests that show it.
    Implemented,
    /// Not yet produced; the issue that brings it.
    Planned {
        /// Number of the issue that delivers the row.
        issue: u32,
    },
    /// Never generated (306): the rule itself is implemented and proven.
    Never,
}

/// One row of the published status-code table (plus `200`, which the contract allows too).
#[derive(Debug)]
pub struct StatusRow {
    /// The status code.
    pub code: u16,
    /// The table's "Message" column, used as the `title` of error bodies.
    pub message: &'static str,
    /// The table's "Description" column, verbatim.
    pub meaning: &'static str,
    /// What Portico does to produce (or avoid) this code.
    pub portico: &'static str,
    /// Whether it is produced today.
    pub state: RowState,
    /// Tests (`file_stem::function`) that prove the row; checked to exist by the docs test.
    pub proof: &'static [&'static str],
    /// `false` only for 200, which is allowed by the contract but is not a row of the table.
    pub in_table: bool,
}

const fn row(
    code: u16,
    message: &'static str,
    meaning: &'static str,
    portico: &'static str,
    state: RowState,
    proof: &'static [&'static str],
) -> StatusRow {
    StatusRow {
        code,
        message,
        meaning,
        portico,
        state,
        proof,
        in_table: true,
    }
}

use RowState::{Implemented, Never};

/// The contract table (`seed/status-codes.txt`), in order, with 200 added at its place.
pub static STATUS_TABLE: &[StatusRow] = &[
    row(
        100,
        "Continue",
        "The client continues sending the request. The server has received the initial part of the request and the client should continue sending the remaining part.",
        "Sent to a request with `Expect: 100-continue` only when its body is first read, which happens after every check decidable from the head passed (route, method, declared length, limits, media type and coding). A failed check sends the final error at once and never reads the body. The same on HTTP/2, as an interim HEADERS frame.",
        Implemented,
        &[
            "protocol::expect_continue_is_sent_only_after_checks_pass",
            "protocol::expect_continue_with_failing_check_gets_final_error_without_100",
            "http2::continue_is_sent_only_when_the_body_is_wanted",
        ],
    ),
    row(
        101,
        "Switching Protocols",
        "The protocol should be switched. The target protocol must be more advanced than the source protocol. For example, the current HTTP protocol is switched to a later version of HTTP.",
        "A WebSocket handshake on a route with `websocket: true`, after every check of the request passed and the upstream answered 101 on a connection of its own; then bytes relayed both ways until either side closes or `websocket_idle_timeout` passes. (h2c upgrade: not offered.)",
        Implemented,
        &[
            "websocket::websocket_is_relayed_both_ways_after_the_upstreams_101",
            "websocket::every_check_comes_before_the_upgrade",
            "websocket::an_upstream_that_does_not_switch_is_relayed_as_it_answers",
            "websocket::an_idle_websocket_is_closed_after_its_timeout",
        ],
    ),
    StatusRow {
        code: 200,
        message: "OK",
        meaning: "The request has succeeded (not a row of the published table; the contract allows it).",
        portico: "Success: built-in handlers (echo, static) answer 200; upstream 200s are relayed.",
        state: Implemented,
        proof: &["echo::echo_returns_the_request_as_json"],
        in_table: false,
    },
    row(
        201,
        "Created",
        "The request has been fulfilled and a new resource has been created.",
        "Admin API creates (`POST` on every collection: projects, consumers, credentials, plans, upstreams, routes, APIs), with `Location` and `ETag`; the token service issues a token (Keystone v3 shape, `X-Subject-Token`).",
        Implemented,
        &[
            "admin::create_read_update_delete_with_the_contracts_codes",
            "tokens::a_keystone_password_request_gets_a_token_that_opens_its_projects_routes",
            "admin::consumers_live_in_their_project_and_credentials_show_their_secret_once",
        ],
    ),
    row(
        202,
        "Accepted",
        "The request has been accepted for processing, but the processing has not been completed.",
        "Routes with `async`: a request without a client deadline whose upstream has not answered within `sync_wait`, or that says `Prefer: respond-async`; `Location` of the job (`{path}/{job_id}`, default `/v1/{project_id}/jobs/…`) and its state as JSON. The upstream request carries on; the job is kept in the store (any node answers for it).",
        Implemented,
        &[
            "jobs::a_late_answer_makes_a_job_that_is_polled_to_its_result",
            "jobs::prefer_respond_async_is_202_at_once_and_other_statuses_replay_as_they_were",
            "cli::any_node_on_one_postgresql_answers_for_any_job",
        ],
    ),
    row(
        203,
        "Non-Authoritative Information",
        "This request is successful.",
        "An upstream's JSON 200 that Portico changed: a route's `transform` (`keep`, `remove`, `rename`, `add`, pointers with `*` for every array item) changed it, or `writeOnly` properties of its OpenAPI operation were removed. `Content-Length` is recomputed, a strong `ETag` becomes weak, `Content-Digest` is dropped; a HEAD says what the GET would. Bodies that are not JSON or are over `transform.max_bytes` (default 1 MiB), and other statuses, are relayed untouched.",
        Implemented,
        &[
            "openapi::a_transformed_200_is_203_with_a_weak_etag_and_no_digest",
            "openapi::write_only_properties_never_leave_and_the_200_becomes_203",
        ],
    ),
    row(
        204,
        "NoContent",
        "The server has successfully processed the request, but has not returned any content. The status code is returned in response to an HTTP OPTIONS request.",
        "`OPTIONS` on any route (and `OPTIONS *`, and any admin API path) is answered by Portico with 204 and `Allow`; a CORS preflight that a route's `cors` allows is 204 with the CORS fields; an admin API `DELETE` is 204.",
        Implemented,
        &[
            "routing::options_on_a_route_is_204_with_allow",
            "routing::options_asterisk_is_204",
            "cors::preflights_and_requests_follow_the_routes_cors",
            "admin::create_read_update_delete_with_the_contracts_codes",
        ],
    ),
    row(
        205,
        "Reset Content",
        "The server has fulfilled the request, but the requester must reset the content.",
        "Admin reset actions, no body: `POST /admin/v1/routes/{id}/stats/reset` sets the route's per-status request counts back to zero; `POST /admin/v1/routes/{id}/limits/reset` and `POST /admin/v1/projects/{project_id}/consumers/{id}/limits/reset` clear the route's or the consumer's rate-limit state (here and in Redis), so the next request has the whole burst; `POST /admin/v1/routes/{id}/cache/reset` and `POST /admin/v1/cache/purge` (`{\"url\"}`, `{\"prefix\"}` or `{\"route\"}`) drop cached responses, on this node at once and on every node on the store within a second (also `portico purge`).",
        Implemented,
        &[
            "cli::a_cache_purge_is_205_and_reaches_every_node_on_the_store",
            "cli::a_route_created_through_the_admin_api_serves_without_a_restart",
            "cli::a_limit_reset_through_the_admin_api_is_205_and_gives_the_burst_back",
        ],
    ),
    row(
        206,
        "Partial Content",
        "The server has successfully processed a part of the GET request.",
        "A satisfiable `Range` on a GET of what Portico serves itself (static routes, job results, and a 200 stored by a route's `cache`, through the same code): one range with `Content-Range`, several as `multipart/byteranges` in the order asked, overlapping or close ranges coalesced, more than 100 specs or 32 parts ignored (no amplification); `If-Range` honoured.",
        Implemented,
        &[
            "static_files::single_range_is_206_with_content_range",
            "static_files::multiple_ranges_are_multipart_byteranges",
            "static_files::overlapping_ranges_are_coalesced_not_amplified",
            "static_files::if_range_decides_between_the_range_and_the_whole_file",
            "static_files::large_files_are_streamed_exactly",
            "cache::conditional_and_range_requests_are_answered_from_a_stored_200",
        ],
    ),
    row(
        300,
        "Multiple Choices",
        "There are multiple options for the location of the requested resource. The response contains a list of resource characteristics and addresses from which a user terminal (such as a browser) can choose the most appropriate one.",
        "Version discovery: `GET` or `HEAD` on an API's `base_path` when more than one of its versions is served; the body lists each version (retired ones left out) with its status and link, `Location` is the current one (the first published).",
        Implemented,
        &["api_lifecycle::the_base_path_lists_the_versions_with_300"],
    ),
    row(
        301,
        "Moved Permanently",
        "The requested resource has been assigned a new permanent URI, and the new URI is contained in the response.",
        "Redirect routes with `status: 301` (the default; 308 keeps the method): `Location` from the route's `to`, its path parameters substituted and the request's query kept.",
        Implemented,
        &[
            "redirect::each_redirect_status_carries_its_location",
            "redirect::methods_head_and_options_follow_the_route",
        ],
    ),
    row(
        302,
        "Found",
        "The requested resource resides temporarily under a different URI.",
        "Redirect routes with `status: 302` (307 keeps the method), `Location` built the same way.",
        Implemented,
        &[
            "redirect::each_redirect_status_carries_its_location",
            "redirect::http2_clients_get_the_same_redirects",
        ],
    ),
    row(
        303,
        "See Other",
        "The response to the request can be found under a different URI. It should be retrieved using a GET or POST method.",
        "Redirect-after-post routes (`redirect` with `status: 303`): `Location` built as for 301, the client follows with GET; a finished job (succeeded or failed) to its result at `…/jobs/{job_id}/result`, which replays the upstream's response (conditional and range requests honoured) or the error the job met.",
        Implemented,
        &[
            "redirect::each_redirect_status_carries_its_location",
            "jobs::a_late_answer_makes_a_job_that_is_polled_to_its_result",
            "jobs::a_job_that_fails_has_its_error_as_its_result",
            "cli::a_job_left_running_by_a_killed_node_fails_when_portico_starts_again",
        ],
    ),
    row(
        304,
        "Not Modified",
        "The requested resource has not been modified. In this case, there is no need to retransmit the resource since the client still has a previously-downloaded copy.",
        "`If-None-Match` (weak comparison) or `If-Modified-Since` false on a GET/HEAD of what Portico serves itself, evaluated in RFC 9110 §13.2.2 order; carries ETag, Cache-Control, Vary and Date as the 200 would, and no body. Admin API `GET`s (items and lists) with an `If-None-Match` that matches. A route's `cache` answers a client's conditional GET from a stored 200 (the upstream never sees the client's conditions), and a stale entry is revalidated upstream with its own validators (a 304 from the upstream refreshes it, RFC 9111 §4.3.4).",
        Implemented,
        &[
            "static_files::if_none_match_is_304_with_the_fields_of_the_200",
            "static_files::if_modified_since_is_304_until_the_file_changes",
            "admin::create_read_update_delete_with_the_contracts_codes",
            "admin::lists_page_with_limit_and_marker_and_revalidate",
            "cache::conditional_and_range_requests_are_answered_from_a_stored_200",
            "cache::a_stale_entry_is_revalidated_with_its_validators_and_a_304_refreshes_it",
        ],
    ),
    row(
        305,
        "Use Proxy",
        "The requested resource must be accessed through a proxy.",
        "Routes with `use_proxy: URL` answer 305 with that proxy in `Location`, after the route's access checks. RFC 9110 §15.4.6 deprecates 305 (clients ignore it for security reasons), so Portico never sends it unless a route asks.",
        Implemented,
        &["redirect::use_proxy_routes_answer_305_with_the_proxy_after_the_access_checks"],
    ),
    row(
        306,
        "Unused",
        "The HTTP status code is no longer used.",
        "Never generated; an upstream that answers 306 gets the client a 502 (`PTC.UPSTREAM_STATUS_306`).",
        Never,
        &["proxy::upstream_306_becomes_502"],
    ),
    row(
        400,
        "BadRequest",
        "Invalid request. Do not retry the request before modification.",
        "Malformed request line or header, obs-fold, bare CR or LF, NUL, missing or repeated Host, Content-Length with Transfer-Encoding, conflicting Content-Length, bad chunk framing, a header section over `max_header_bytes` (never 431), a field name that only underscores tell apart from Content-Length or Transfer-Encoding. Each cause has its own error code; the connection is closed. A corpus of desync vectors (`crates/portico/tests/smuggling/`) checks that none reaches an upstream. On routes from an OpenAPI document: a parameter (path, query, header, cookie) that is missing or breaks its schema, read by its `style` and `explode` (`PTC.PARAMETER_INVALID`, every problem in `errors` with `in`, `name`, `pointer`, `detail`; decided from the head), a required body that is absent (`PTC.BODY_REQUIRED`), a JSON body that is not JSON or nests deeper than 128 levels (`PTC.BODY_MALFORMED`).",
        Implemented,
        &[
            "protocol::malformed_request_line_is_400",
            "protocol::obs_fold_is_400",
            "protocol::bare_cr_in_header_is_400",
            "protocol::nul_in_header_is_400",
            "protocol::missing_host_on_http11_is_400",
            "protocol::content_length_with_transfer_encoding_is_400",
            "protocol::conflicting_content_lengths_are_400",
            "protocol::bad_chunk_size_is_400",
            "protocol::header_section_over_limit_is_400_not_431",
            "openapi::bad_parameters_are_400_listing_every_problem_before_the_upstream",
            "openapi::bodies_are_415_400_or_422_by_the_operations_request_body",
            "smuggling::every_desync_vector_is_refused_or_neutralised",
        ],
    ),
    row(
        401,
        "Unauthorized",
        "This status code is returned after the client provides authentication information to indicate that the information is incorrect or invalid.",
        "Routes with `auth`: no credentials (`PTC.CREDENTIALS_MISSING`), unreadable ones (`PTC.CREDENTIALS_MALFORMED`), an unknown API key (`PTC.API_KEY_UNKNOWN`), a revoked or expired one (`PTC.CREDENTIAL_REVOKED`, `PTC.CREDENTIAL_EXPIRED`), a signed request that fails (`PTC.SIGNATURE_MALFORMED`, `PTC.ACCESS_KEY_UNKNOWN`, `PTC.SIGNATURE_SKEWED`, `PTC.SIGNATURE_MISMATCH`, `PTC.BODY_DIGEST_MISMATCH`), a token that fails (`PTC.TOKEN_UNKNOWN`, expired or revoked as above), a wrong user or password at the token service (`PTC.LOGIN_FAILED`), a JSON Web Token that fails (`PTC.JWT_MALFORMED`, `PTC.JWT_ALGORITHM_REFUSED`, `PTC.JWT_KEY_UNKNOWN`, `PTC.JWT_SIGNATURE_INVALID`, `PTC.JWT_EXPIRED`, `PTC.JWT_NOT_YET_VALID`, `PTC.JWT_CLAIMS_INVALID`), each with a `WWW-Authenticate` challenge per scheme the route takes, decided before `100 Continue` where the head can decide it; the admin API's bearer token missing or wrong (`PTC.ADMIN_TOKEN_MISSING`, `PTC.ADMIN_TOKEN_INVALID`).",
        Implemented,
        &[
            "access::api_keys_name_the_caller_and_every_failure_has_its_code",
            "access::refusals_come_before_100_continue_and_before_the_upstream",
            "access::an_expired_key_is_refused",
            "signature::every_signature_failure_is_its_own_401",
            "jwt::every_bad_token_is_its_own_401",
            "tokens::unknown_expired_and_revoked_tokens_are_refused",
            "tokens::wrong_logins_and_bad_requests_have_their_codes",
            "cli::tokens_live_in_the_store_as_digests_and_a_revocation_takes_effect_at_once",
            "signature::a_signed_digest_is_checked_before_100_continue_and_the_body_before_the_upstream",
            "signature::a_body_signed_without_a_digest_header_is_checked_once_read",
            "cli::keys_issued_through_the_admin_api_open_a_route_until_they_are_revoked",
            "cli::no_secret_reaches_a_log_line_or_an_error_body",
            "admin::every_request_needs_the_bearer_token",
        ],
    ),
    row(
        402,
        "Payment Required",
        "This status code is reserved for future use.",
        "A project with `billing_state: suspended` (the caller's, or the URL's `{project_id}` on a route without `auth`) gets `PTC.BILLING_SUSPENDED` on every request; a project whose plan's prepaid `quota` for the period (UTC day or month) is spent gets `PTC.QUOTA_SPENT`, with the start of the next period in the detail, until that period begins. Quotas are counted in the store, one count for every node on it (reserved a thousandth at a time, so a node holds back at most that).",
        Implemented,
        &[
            "access::suspended_projects_get_402_and_closed_ones_403",
            "access::a_spent_prepaid_quota_is_402_before_the_upstream",
            "cli::a_prepaid_quota_is_counted_once_across_two_nodes",
        ],
    ),
    row(
        403,
        "Forbidden",
        "The server understands the request, but is refusing to fulfill it. The server has received and understood the request, but it refused to respond, because the request is set to deny access. Do not retry the request before modification.",
        "Authenticated but not allowed: credentials for another project than the URL's (`PTC.PROJECT_MISMATCH`), a closed project (`PTC.PROJECT_CLOSED`), a client outside `allow_cidrs` or inside `deny_cidrs` (`PTC.CLIENT_ADDRESS_DENIED`), a route `policy` that refuses the caller or the request (`PTC.POLICY_DENIED`), a browser's request or preflight from an origin, or for a method or header, the route's `cors` does not allow (`PTC.CORS_ORIGIN_DENIED`, `PTC.CORS_PREFLIGHT_DENIED`); an egress proxy destination `egress.allow_hosts` does not name (`PTC.EGRESS_HOST_DENIED`) or that resolves only to internal addresses it does not list by address (`PTC.EGRESS_ADDRESS_DENIED`, the SSRF guard).",
        Implemented,
        &[
            "access::the_callers_project_must_be_the_one_in_the_url",
            "access::suspended_projects_get_402_and_closed_ones_403",
            "access::client_networks_are_allowed_and_denied",
            "access::a_route_policy_allows_and_denies_by_who_and_what",
            "egress::destinations_not_allowed_and_internal_addresses_are_403",
            "cors::preflights_and_requests_follow_the_routes_cors",
            "cors::a_real_browser_preflights_and_is_answered",
        ],
    ),
    row(
        404,
        "NotFound",
        "The requested resource cannot be found. Do not retry the request before modification.",
        "No route matches the request path (`PTC.ROUTE_NOT_FOUND`); a static route has no regular file at the path, or the path would leave its root (`PTC.FILE_NOT_FOUND`); no job with this id in the URL's project, another project's included (`PTC.JOB_NOT_FOUND`), or no result yet (`PTC.JOB_RESULT_NOT_READY`).",
        Implemented,
        &[
            "routing::unknown_path_is_404",
            "static_files::paths_never_leave_the_root",
            "jobs::jobs_belong_to_their_project",
            "jobs::a_late_answer_makes_a_job_that_is_polled_to_its_result",
        ],
    ),
    row(
        405,
        "MethodNotAllowed",
        "The method specified in the request is not supported by the requested resource. Do not retry the request before modification.",
        "The path matches a route (or an admin API resource) but the method is not among its methods; `Allow` lists them. Every method of the IANA HTTP Method Registry (`QUERY`, `PROPFIND`, …) that a path does not take is 405, not 501.",
        Implemented,
        &[
            "routing::wrong_method_is_405_with_allow",
            "routing::registered_methods_a_route_does_not_take_are_405_and_others_501",
            "cli::schemathesis_finds_nothing_in_the_admin_api",
        ],
    ),
    row(
        406,
        "Not Acceptable",
        "The server could not fulfill the request according to the content characteristics of the request.",
        "`Accept` matches none of a route's `produces` (decided before anything is sent upstream; a route from an OpenAPI operation produces the media types of its 2xx responses) or a static file's type; `Accept-Encoding` refuses identity and no precompressed sibling it accepts exists. The body's `available` lists what there is.",
        Implemented,
        &[
            "negotiation::accept_matching_nothing_produced_is_406_before_the_upstream",
            "static_files::accept_that_excludes_the_files_type_is_406",
            "static_files::identity_refused_without_an_acceptable_sibling_is_406",
            "openapi::accept_is_held_to_what_the_operation_produces",
        ],
    ),
    row(
        407,
        "Proxy Authentication Required",
        "This status code is similar to 401, but the client must first authenticate itself with the proxy.",
        "The egress proxy (`egress:`, a listener of its own) answers an absolute-form or CONNECT request without valid `Proxy-Authorization` with 407 and `Proxy-Authenticate` for its scheme (`Basic` with a consumer's name and password, or `Bearer` with a token from the token service): `PTC.PROXY_CREDENTIALS_MISSING`, `PTC.PROXY_CREDENTIALS_MALFORMED`, `PTC.PROXY_CREDENTIALS_INVALID`.",
        Implemented,
        &[
            "egress::without_valid_proxy_credentials_it_is_407_with_proxy_authenticate",
            "egress::with_auth_token_the_token_services_tokens_open_the_proxy",
        ],
    ),
    row(
        408,
        "Request Time-out",
        "The server timed out waiting for the request. The client may repeat the request without modifications at any later time.",
        "The request head did not arrive within `header_timeout`, or the body made no progress for `body_timeout`; `Connection: close`. An idle keep-alive connection is closed silently. On HTTP/2 a stalled body gets 408 on its stream, which is then reset; the connection and its other streams go on.",
        Implemented,
        &[
            "timeouts::head_timeout_is_408_then_close",
            "timeouts::body_stall_is_408_then_close",
            "timeouts::idle_keep_alive_connection_closes_silently",
            "clients::slow_header_clients_neither_delay_others_nor_escape_their_408",
            "http2::a_stalled_stream_gets_408_and_the_connection_goes_on",
        ],
    ),
    row(
        409,
        "Conflict",
        "The request could not be processed due to a conflict in it. This status code indicates that the resource the client is attempting to create already exists, or the requested update failed due to a conflict.",
        "Admin API: a create whose name is taken (`PTC.NAME_TAKEN`), a body whose `version` is stale (`PTC.VERSION_CONFLICT`), a document its schema allows that the model cannot take (an unknown upstream, an overlapping route, a rule relating its parts that no schema can state) or a merge patch that does not fit the item as it is (`PTC.MODEL_CONFLICT`, each in `conflicts` with its pointer), a change that would break other resources or delete a parent that still holds items (`PTC.RESOURCE_IN_USE`), a write that other writes kept overtaking (`PTC.CONCURRENT_CHANGE`); a retry with the same `Idempotency-Key` while the first is in flight, on any node sharing the store (`PTC.IDEMPOTENCY_KEY_IN_FLIGHT`, `Retry-After: 1`), or after a first whose response was too large to keep (`PTC.IDEMPOTENCY_RESPONSE_NOT_KEPT`).",
        Implemented,
        &[
            "admin::create_read_update_delete_with_the_contracts_codes",
            "admin::upstreams_and_routes_are_checked_with_the_files_rules",
            "admin::concurrent_writes_never_leave_the_model_broken",
            "admin::consumers_live_in_their_project_and_credentials_show_their_secret_once",
            "idempotency::the_key_with_another_payload_is_422_and_in_flight_is_409",
            "idempotency::a_response_too_large_to_keep_is_relayed_whole_and_its_retry_is_409",
            "cli::idempotency_keys_are_shared_by_two_nodes_on_one_postgresql",
        ],
    ),
    row(
        410,
        "Gone",
        "The requested resource is no longer available. The status code indicates that the requested resource has been deleted permanently.",
        "Retired API versions (`PTC.API_VERSION_RETIRED`); deleted admin resources while their tombstone is kept (`PTC.RESOURCE_GONE`); a job whose retention is over (`PTC.JOB_EXPIRED`, for another retention before it is forgotten).",
        Implemented,
        &[
            "api_lifecycle::retired_disabled_and_maintained_versions_are_refused",
            "admin::create_read_update_delete_with_the_contracts_codes",
            "jobs::after_its_retention_a_result_is_gone",
        ],
    ),
    row(
        411,
        "Length Required",
        "The server refuses to process the request without a defined Content-Length.",
        "A route with `require_content_length: true` received a chunked body.",
        Implemented,
        &["protocol::chunked_body_on_route_requiring_length_is_411"],
    ),
    row(
        412,
        "Precondition Failed",
        "The server does not meet one of the preconditions that the requester puts on the request.",
        "`If-Match` (strong comparison) or `If-Unmodified-Since` is false for what Portico serves itself; an unparseable `If-Match` matches nothing. Admin API `PUT`, `PATCH` and `DELETE` whose `If-Match` does not hold, and `If-None-Match: *` on an existing item. A route's `cache` evaluates `If-Match` / `If-Unmodified-Since` against a stored 200.",
        Implemented,
        &[
            "cache::conditional_and_range_requests_are_answered_from_a_stored_200",
            "static_files::failed_if_match_is_412",
            "static_files::failed_if_unmodified_since_is_412",
            "admin::create_read_update_delete_with_the_contracts_codes",
        ],
    ),
    row(
        413,
        "Request Entity Too Large",
        "The request is larger than what a server can process. The server may disable the connection to prevent the client from sending consecutive requests. If the server cannot temporarily process the request, the response will contain a Retry-After header field.",
        "Permanent: a declared Content-Length over the route's `max_body_bytes` is refused before the body is read; a streamed body that crosses it is cut off; both with `Connection: close` and no `Retry-After`. Temporary: a route that buffers bodies cannot reserve room in `limits.body_buffer_bytes` now; `Retry-After`, before `100 Continue` when the length is declared. On HTTP/2, where closing would take other streams down, the 413 ends its own stream only (`RST_STREAM(NO_ERROR)` after the response).",
        Implemented,
        &[
            "http2::a_body_over_the_limit_gets_413_and_ends_only_its_stream",
            "protocol::declared_length_over_limit_is_413_without_reading_body",
            "protocol::chunked_body_crossing_limit_is_413_and_close",
            "buffering::a_body_over_the_route_limit_is_the_permanent_413",
            "buffering::a_spent_budget_is_a_temporary_413_with_retry_after",
            "buffering::a_chunked_body_that_outgrows_the_budget_is_a_temporary_413_and_a_close",
        ],
    ),
    row(
        414,
        "Request-URI Too Large",
        "The Request-URI is too long for the server to process.",
        "The request target is longer than `max_uri_bytes`.",
        Implemented,
        &[
            "protocol::long_target_is_414",
            "protocol::long_target_is_414_before_line_ends",
        ],
    ),
    row(
        415,
        "Unsupported Media Type",
        "The server does not support the media type in the request.",
        "A request body whose `Content-Type` is not among the route's `consumes` (with `Accept` listing them; a route from an OpenAPI operation consumes its `requestBody`'s media types), or whose `Content-Encoding` the route does not take (with `Accept-Encoding`); decided from the head, before `100 Continue` and before anything is sent upstream.",
        Implemented,
        &[
            "negotiation::content_type_not_consumed_is_415_with_accept",
            "negotiation::content_encoding_not_taken_is_415_with_accept_encoding",
            "negotiation::unsupported_media_type_is_decided_before_100_continue",
            "static_files::route_level_produces_and_consumes_apply_to_static_routes_too",
            "openapi::bodies_are_415_400_or_422_by_the_operations_request_body",
        ],
    ),
    row(
        416,
        "Requested range not satisfiable",
        "The requested range is invalid.",
        "No range of a valid `bytes` Range overlaps what Portico serves itself (a static file, a job result, a 200 stored by a route's `cache`); `Content-Range: bytes */LENGTH`. Unknown units and malformed values are ignored (200), as RFC 9110 §14.2 says.",
        Implemented,
        &[
            "static_files::unsatisfiable_range_is_416_with_content_range",
            "cache::conditional_and_range_requests_are_answered_from_a_stored_200",
        ],
    ),
    row(
        417,
        "Expectation Failed",
        "The server fails to meet the requirements of the Expect request-header field.",
        "`Expect` with anything other than `100-continue`.",
        Implemented,
        &["protocol::unknown_expectation_is_417"],
    ),
    row(
        422,
        "UnprocessableEntity",
        "The request is well-formed but cannot be processed due to semantic errors.",
        "Admin API documents that break their resource's schema (the one its OpenAPI document publishes, which Schemathesis holds it to), every violation listed by JSON pointer (`PTC.VALIDATION_FAILED`); an `Idempotency-Key` used before with another payload: method, target, content type or body (`PTC.IDEMPOTENCY_KEY_REUSED`); a JSON body that breaks the schema of its route's OpenAPI operation (`PTC.SCHEMA_INVALID`: draft 2020-12 for 3.1 documents, 3.0's dialect with `nullable` for 3.0 ones; `readOnly` properties refused), every violation in `errors` with the body's pointer, the schema's (`FILE#POINTER`) and the keyword.",
        Implemented,
        &[
            "admin::bad_bodies_get_400_415_and_422_with_every_violation",
            "admin::upstreams_and_routes_are_checked_with_the_files_rules",
            "admin::plans_hold_a_quota_and_rate_limits",
            "cli::schemathesis_finds_nothing_in_the_admin_api",
            "idempotency::the_key_with_another_payload_is_422_and_in_flight_is_409",
            "cli::idempotency_keys_are_shared_by_two_nodes_on_one_postgresql",
            "openapi::bodies_are_415_400_or_422_by_the_operations_request_body",
            "openapi::http2_requests_are_checked_the_same_way",
        ],
    ),
    row(
        429,
        "TooManyRequests",
        "The client has sent an excessive number of requests to the server within a given time (exceeding the limit on the access frequency of the client), or the server has received an excessive number of requests within a given time (beyond its processing capability). In this case, the client should resend the request after the time specified in the Retry-After header of the response has elapsed.",
        "A route's `rate_limit` exceeded for the caller's key (address, project, consumer, route or a header's value; `PTC.RATE_LIMITED`), decided before `100 Continue` and the upstream, with `RateLimit-Policy` and `RateLimit` on every answer of the route; a client address that failed to authenticate more often than `limits.auth_failures` allows (`PTC.AUTH_FAILURES_LIMITED`). Both with the exact `Retry-After` (GCRA: when the request would have been admitted, whole seconds rounded up, never 0). With `cluster.redis`, every node decides each limit from the same state in Redis. More requests in progress than a route's or an upstream's `max_in_flight` (`PTC.CONCURRENCY_LIMITED`, `Retry-After: 1`: beyond its processing capability). A plan's `rate_limits` apply the same way to its projects on every route.",
        Implemented,
        &[
            "access::repeated_failures_from_one_address_get_429_with_the_exact_wait",
            "rate_limits::a_burst_then_429_with_the_exact_retry_after_and_ratelimit_fields",
            "rate_limits::retry_after_counts_down_to_the_moment_of_admission_and_is_never_0",
            "rate_limits::projects_and_consumers_each_have_their_own_budget",
            "rate_limits::a_limited_request_is_refused_before_100_continue_and_the_upstream",
            "rate_limits::two_gateways_on_one_redis_share_each_limit",
            "cli::two_nodes_on_one_redis_admit_no_more_than_the_limit_at_five_times_its_rate",
            "rate_limits::max_in_flight_refuses_one_too_many_until_a_place_is_free",
            "rate_limits::a_plans_limits_apply_to_its_projects_on_every_route",
        ],
    ),
    row(
        500,
        "InternalServerError",
        "The server can receive but cannot understand the request.",
        "A fault inside Portico: a panic while handling a request is caught and answered 500; nothing internal reaches the client and the process lives on.",
        Implemented,
        &["panic::handler_panic_is_500_and_the_server_lives_on"],
    ),
    row(
        501,
        "Not Implemented",
        "The server does not support the requested function.",
        "A method outside the IANA HTTP Method Registry (methods are case-sensitive: `get` is one), `CONNECT` on the data plane, or a request `Transfer-Encoding` other than chunked.",
        Implemented,
        &[
            "protocol::unknown_method_is_501",
            "protocol::transfer_encoding_gzip_is_501",
            "smuggling::every_desync_vector_is_refused_or_neutralised",
        ],
    ),
    row(
        502,
        "Bad Gateway",
        "The server was acting as a gateway or proxy and received an invalid request from the remote server.",
        "The upstream refused the connection, reset it (or an HTTP/2 stream), answered invalid HTTP, answered 306, or failed the TLS handshake; each its own error code. A target that could not be connected to is skipped for the upstream's next target (the request never reached it); 502 when none could be. A job's result when the job failed: the error its request met, its node stopped first (`PTC.JOB_INTERRUPTED`), or the answer was too large to keep (`PTC.JOB_RESULT_TOO_LARGE`). A route with `validate_responses: enforce`, and an upstream response its OpenAPI operation does not allow (`PTC.UPSTREAM_RESPONSE_INVALID`).",
        Implemented,
        &[
            "jobs::a_job_that_fails_has_its_error_as_its_result",
            "jobs::an_enormous_result_fails_its_job_and_is_not_kept",
            "cli::a_job_left_running_by_a_killed_node_fails_when_portico_starts_again",
            "proxy::upstream_refusing_connections_is_502",
            "health::a_target_that_cannot_be_reached_is_skipped_for_the_next",
            "health::the_same_cause_gives_the_same_code_on_http1_http2_and_after_retries",
            "proxy::upstream_reset_is_502",
            "proxy::upstream_garbage_is_502",
            "proxy::upstream_306_becomes_502",
            "openapi::responses_the_document_does_not_allow_are_502_when_enforced_and_counted_when_reported",
            "upstream_h2::upstream_stream_failures_are_502_and_refused_streams_are_retried",
            "upstream_h2::untrusted_or_misnamed_upstream_certificates_are_502",
        ],
    ),
    row(
        503,
        "ServiceUnavailable",
        "The requested service is invalid. Do not retry the request before modification.",
        "A disabled API version (`PTC.API_VERSION_DISABLED`, no `Retry-After`) or one inside its maintenance window (`PTC.API_VERSION_MAINTENANCE`, `Retry-After` to the window's end); a rate limit with `on_store_failure: deny` whose shared store (`cluster.redis`) cannot decide within its budget (`PTC.RATE_LIMIT_STORE_UNAVAILABLE`, `Retry-After: 1`); an upstream whose every target is left out by its active health checks or ejected by passive health (`PTC.NO_HEALTHY_TARGET`, `Retry-After` until the first may be back); a store of idempotency keys that fails (`PTC.IDEMPOTENCY_STORE_UNAVAILABLE`, `Retry-After: 1`, nothing sent on); a store of jobs that fails when a job is read or must be recorded before anything is sent (`PTC.JOBS_UNAVAILABLE`, `Retry-After: 1`); the admin API's store that fails to answer, nothing changed (`PTC.STORE_UNAVAILABLE`, `Retry-After: 1`).",
        Implemented,
        &[
            "jobs::a_store_that_fails_is_503_or_a_synchronous_answer",
            "admin::a_store_that_fails_is_503_with_retry_after",
            "api_lifecycle::retired_disabled_and_maintained_versions_are_refused",
            "rate_limits::when_the_shared_store_is_down_each_limit_does_what_it_declares",
            "health::consecutive_failures_eject_targets_and_none_left_is_503_with_retry_after",
            "health::when_every_target_fails_its_checks_it_is_503",
            "idempotency::a_store_that_fails_is_503_and_nothing_is_sent",
        ],
    ),
    row(
        504,
        "ServerTimeout",
        "The request cannot be fulfilled within a given time. This status code is only returned to the client when the Timeout parameter is specified in the request.",
        "The client's deadline (`Timeout: <seconds>` or `?timeout=`, cut to the route's `max_timeout`), else the route's `timeout`, passed before the upstream's response head arrived (`PTC.DEADLINE_EXCEEDED`); the upstream request is dropped. The upstream is told the time left in `X-Portico-Timeout-Ms`. Also `Cache-Control: only-if-cached` on a cached route with no stored response that may answer (`PTC.NOT_CACHED`, nothing sent upstream): RFC 9111 §5.2.1.7 names 504 for it, and it is this row's meaning from the client's side — the answer could not be had within what the client allowed, here no time at the origin at all; no other row fits (404 would say the resource does not exist).",
        Implemented,
        &[
            "cache::only_if_cached_with_nothing_stored_is_504_and_nothing_is_sent",
            "deadlines::a_client_timeout_that_passes_first_is_504_and_the_upstream_request_is_dropped",
            "deadlines::the_timeout_field_sets_the_deadline_and_the_route_caps_it",
            "deadlines::a_route_timeout_is_the_default_deadline_and_connect_failures_stay_502",
            "deadlines::http2_requests_have_the_same_deadlines",
        ],
    ),
    row(
        505,
        "HTTP Version not supported",
        "The server does not support the HTTP protocol version used in the request.",
        "A request line whose major version is not 1 (`HTTP/2.0`, `HTTP/3.0`); `Connection: close`. HTTP/2 itself is spoken only when negotiated (ALPN `h2`, or the connection preface on cleartext); with `http2.enabled: false` the preface is 505 too.",
        Implemented,
        &[
            "protocol::http2_request_line_is_505",
            "protocol::http3_request_line_is_505",
            "http2::with_http2_off_the_preface_is_not_http2",
        ],
    ),
];

/// The row for `code`, if the contract allows Portico to generate it.
pub fn status_row(code: u16) -> Option<&'static StatusRow> {
    STATUS_TABLE.iter().find(|r| r.code == code)
}

/// Who caused an error: what a client can do about it depends on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The request itself (or the client's connection) is at fault.
    Client,
    /// The upstream failed or misbehaved.
    Upstream,
    /// Portico itself failed.
    Gateway,
}

/// What the table tells a client to do before retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Do not retry before the request changes.
    AfterChange,
    /// May be repeated at once, unchanged (408).
    Immediately,
    /// Retry after the `Retry-After` the response carries.
    AfterRetryAfter,
    /// A later attempt may succeed; idempotent requests may be retried.
    Later,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Client => "client",
            Source::Upstream => "upstream",
            Source::Gateway => "gateway",
        })
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Retry::AfterChange => "not before the request changes",
            Retry::Immediately => "at once, unchanged",
            Retry::AfterRetryAfter => "after Retry-After",
            Retry::Later => "later (idempotent requests)",
        })
    }
}

macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => ($status:literal, $code:literal, $source:ident, $retry:ident, $close:literal, $msg:literal);
    )+) => {
        /// Every distinct cause of an error Portico generates, each with a stable code.
        ///
        /// The status, public message, source, retry rule and whether the connection closes are
        /// fixed per code; details beyond that go to logs only.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl ErrorCode {
            /// All codes, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The HTTP status this cause is answered with.
            pub const fn status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
            }

            /// The stable `error_code` string, e.g. `PTC.ROUTE_NOT_FOUND`.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => concat!("PTC.", $code), )+ }
            }

            /// The fixed public message (`error_msg`).
            pub const fn message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $msg, )+ }
            }

            /// Who is at fault.
            pub const fn source(self) -> Source {
                match self { $( ErrorCode::$variant => Source::$source, )+ }
            }

            /// What the client should do before retrying.
            pub const fn retry(self) -> Retry {
                match self { $( ErrorCode::$variant => Retry::$retry, )+ }
            }

            /// Whether the response closes the connection whatever else holds (framing can no
            /// longer be trusted, or the contract says so).
            pub const fn closes_connection(self) -> bool {
                match self { $( ErrorCode::$variant => $close, )+ }
            }

            /// The longer description published in `docs/errors.md`.
            pub const fn description(self) -> &'static str {
                match self { $( ErrorCode::$variant => concat!($($doc),+), )+ }
            }
        }
    };
}

error_codes! {
    /// The request line is not `METHOD SP request-target SP HTTP-version`.
    RequestLineMalformed => (400, "REQUEST_LINE_MALFORMED", Client, AfterChange, true, "The request line is malformed.");
    /// The request target contains a byte that is not allowed or a broken percent-encoding.
    TargetCharInvalid => (400, "TARGET_INVALID", Client, AfterChange, true, "The request target contains an invalid character.");
    /// The request target's form does not fit the method (`*` without OPTIONS, authority-form without CONNECT, an unknown scheme).
    TargetFormInvalid => (400, "TARGET_FORM_INVALID", Client, AfterChange, true, "The request target has a form this method does not allow.");
    /// The HTTP version in the request line is not of the form `HTTP/DIGIT.DIGIT`.
    VersionMalformed => (400, "VERSION_MALFORMED", Client, AfterChange, true, "The HTTP version in the request line is malformed.");
    /// A header line has no colon, an empty name, or a byte that is not allowed in a field name.
    HeaderNameInvalid => (400, "HEADER_NAME_INVALID", Client, AfterChange, true, "A header field name is invalid.");
    /// Whitespace between a header field name and its colon (RFC 9112 §5.1).
    HeaderNameWhitespace => (400, "HEADER_NAME_WHITESPACE", Client, AfterChange, true, "A header field name is followed by whitespace before the colon.");
    /// A WebSocket handshake on a WebSocket route that breaks RFC 6455 §4.2.1 (not GET, not HTTP/1.1, a bad `Sec-WebSocket-Key`, a `Sec-WebSocket-Version` other than 13, answered with `Sec-WebSocket-Version: 13`).
    WebSocketHandshakeInvalid => (400, "WEBSOCKET_HANDSHAKE_INVALID", Client, AfterChange, false, "The WebSocket handshake is invalid.");
    /// A field name that, with `_` read as `-`, is `Content-Length` or `Transfer-Encoding`: an upstream that reads names CGI-style would see a second framing (request smuggling).
    HeaderNameAmbiguous => (400, "HEADER_NAME_AMBIGUOUS", Client, AfterChange, true, "A header field name differs from a framing field only by underscores.");
    /// A control character in a header field value.
    HeaderValueInvalid => (400, "HEADER_VALUE_INVALID", Client, AfterChange, true, "A header field value contains an invalid character.");
    /// A header line that begins with whitespace: obsolete line folding (RFC 9112 §5.2).
    ObsFold => (400, "OBS_FOLD", Client, AfterChange, true, "Obsolete line folding is not accepted.");
    /// A carriage return that is not followed by a line feed.
    BareCr => (400, "BARE_CR", Client, AfterChange, true, "The request head contains a bare carriage return.");
    /// A line feed that is not preceded by a carriage return.
    BareLf => (400, "BARE_LF", Client, AfterChange, true, "The request head contains a bare line feed.");
    /// A NUL byte in the request head.
    NulByte => (400, "NUL_BYTE", Client, AfterChange, true, "The request head contains a NUL byte.");
    /// The header section is larger than `limits.max_header_bytes` (Portico answers 400, never 431).
    HeaderSectionTooLarge => (400, "HEADER_SECTION_TOO_LARGE", Client, AfterChange, true, "The request header section is too large.");
    /// More header fields than `limits.max_headers`.
    TooManyHeaders => (400, "TOO_MANY_HEADERS", Client, AfterChange, true, "The request has too many header fields.");
    /// An HTTP/1.1 request without a `Host` header.
    HostMissing => (400, "HOST_MISSING", Client, AfterChange, true, "The request has no Host header.");
    /// More than one `Host` header.
    HostMultiple => (400, "HOST_MULTIPLE", Client, AfterChange, true, "The request has more than one Host header.");
    /// A `Host` value that is not a valid `host[:port]`.
    HostInvalid => (400, "HOST_INVALID", Client, AfterChange, true, "The Host header is invalid.");
    /// An absolute-form request target whose authority differs from the `Host` header.
    HostMismatch => (400, "HOST_MISMATCH", Client, AfterChange, true, "The Host header does not match the request target.");
    /// A `Content-Length` that is not a non-negative decimal number.
    ContentLengthInvalid => (400, "CONTENT_LENGTH_INVALID", Client, AfterChange, true, "The Content-Length header is invalid.");
    /// More than one `Content-Length` value, equal or not.
    ContentLengthMultiple => (400, "CONTENT_LENGTH_MULTIPLE", Client, AfterChange, true, "The request has more than one Content-Length.");
    /// Both `Content-Length` and `Transfer-Encoding`: the framing is ambiguous (RFC 9112 §6.3).
    ContentLengthWithTransferEncoding => (400, "CONTENT_LENGTH_WITH_TRANSFER_ENCODING", Client, AfterChange, true, "The request has both Content-Length and Transfer-Encoding.");
    /// A `Transfer-Encoding` where chunked is not the final coding, is repeated, or is empty.
    TransferEncodingInvalid => (400, "TRANSFER_ENCODING_INVALID", Client, AfterChange, true, "The Transfer-Encoding header is invalid.");
    /// `Transfer-Encoding` in an HTTP/1.0 request, whose framing cannot be trusted (RFC 9112 §6.1).
    TransferEncodingInHttp10 => (400, "TRANSFER_ENCODING_IN_HTTP10", Client, AfterChange, true, "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
    /// A chunk size that is not hexadecimal or does not fit in 64 bits.
    ChunkSizeInvalid => (400, "CHUNK_SIZE_INVALID", Client, AfterChange, true, "A chunk size in the request body is invalid.");
    /// A malformed or oversized chunk extension.
    ChunkExtensionInvalid => (400, "CHUNK_EXTENSION_INVALID", Client, AfterChange, true, "A chunk extension in the request body is invalid.");
    /// Chunk data not followed by CRLF.
    ChunkTerminatorMissing => (400, "CHUNK_TERMINATOR_MISSING", Client, AfterChange, true, "A chunk in the request body is not terminated by CRLF.");
    /// A malformed or oversized trailer section.
    ChunkTrailerInvalid => (400, "CHUNK_TRAILER_INVALID", Client, AfterChange, true, "The trailer section of the request body is invalid.");
    /// The client closed its side before sending the whole body it announced.
    BodyIncomplete => (400, "BODY_INCOMPLETE", Client, AfterChange, true, "The request body ended before its announced length.");
    /// A parameter of an OpenAPI operation (path, query, header or cookie) that is missing, cannot be read by its `style`, or breaks its schema; `errors` lists each problem (`in`, `name`, `pointer`, `detail`).
    ParameterInvalid => (400, "PARAMETER_INVALID", Client, AfterChange, false, "A request parameter is missing or not valid.");
    /// An OpenAPI operation whose `requestBody` is required, and a request without a body.
    BodyRequired => (400, "BODY_REQUIRED", Client, AfterChange, false, "This request needs a body.");
    /// A JSON body (by its `Content-Type`) that is not JSON, or nests deeper than 128 levels, on a route that checks it against an OpenAPI schema.
    BodyMalformed => (400, "BODY_MALFORMED", Client, AfterChange, false, "The request body is not valid JSON.");
    /// An admin request body that is not a JSON document (or not an object).
    JsonMalformed => (400, "JSON_MALFORMED", Client, AfterChange, false, "The request body is not a valid JSON object.");
    /// A token request that is JSON but not a Keystone v3 password-method request (`auth.identity.methods` with `password`, `auth.identity.password.user.name` and `.password`).
    TokenRequestInvalid => (400, "TOKEN_REQUEST_INVALID", Client, AfterChange, false, "The token request is not a password-method request.");
    /// `DELETE /admin/v1/tokens` without `X-Subject-Token` naming the token to revoke.
    SubjectTokenMissing => (400, "SUBJECT_TOKEN_MISSING", Client, AfterChange, false, "The request does not name a token in X-Subject-Token.");
    /// An `Idempotency-Key` that is not one string of 1 to 255 visible characters (a structured-field string, or bare), or is given twice.
    IdempotencyKeyInvalid => (400, "IDEMPOTENCY_KEY_INVALID", Client, AfterChange, false, "The Idempotency-Key header is invalid: send one quoted string of 1 to 255 visible characters.");
    /// A POST or PATCH without `Idempotency-Key` on a route whose `idempotency` says `required: true`.
    IdempotencyKeyMissing => (400, "IDEMPOTENCY_KEY_MISSING", Client, AfterChange, false, "This operation requires an Idempotency-Key header.");
    /// A `Timeout` field or `timeout=` query parameter that is not a positive duration (or is given twice).
    TimeoutInvalid => (400, "TIMEOUT_INVALID", Client, AfterChange, false, "The request's timeout is not a valid duration: use seconds, or a number with ms, s, m or h.");
    /// An admin request without `Authorization: Bearer`.
    AdminTokenMissing => (401, "ADMIN_TOKEN_MISSING", Client, AfterChange, false, "This request needs a bearer token.");
    /// An admin request whose bearer token is not the admin token.
    AdminTokenInvalid => (401, "ADMIN_TOKEN_INVALID", Client, AfterChange, false, "The bearer token is not valid.");
    /// A route with `auth` got no credentials of any scheme it takes; `WWW-Authenticate` names each.
    CredentialsMissing => (401, "CREDENTIALS_MISSING", Client, AfterChange, false, "This request needs credentials.");
    /// Credentials that cannot be read: an API key given twice, empty, or longer than 512 bytes.
    CredentialsMalformed => (401, "CREDENTIALS_MALFORMED", Client, AfterChange, false, "The credentials in the request are malformed.");
    /// An API key Portico does not know (it compares SHA-256 digests of the key only).
    ApiKeyUnknown => (401, "API_KEY_UNKNOWN", Client, AfterChange, false, "The API key is not valid.");
    /// An `X-Auth-Token` that the token service never issued (or whose record was purged after it expired).
    TokenUnknown => (401, "TOKEN_UNKNOWN", Client, AfterChange, false, "The token is not valid.");
    /// A token request whose user name or password is wrong, or whose project is not the user's; which one is not said.
    LoginFailed => (401, "LOGIN_FAILED", Client, AfterChange, false, "The user name or password is not valid.");
    /// A credential past its `expires_at`.
    CredentialExpired => (401, "CREDENTIAL_EXPIRED", Client, AfterChange, false, "The credential has expired.");
    /// A credential that was revoked (`enabled: false`), or whose consumer is disabled.
    CredentialRevoked => (401, "CREDENTIAL_REVOKED", Client, AfterChange, false, "The credential has been revoked.");
    /// `Authorization: SDK-HMAC-SHA256 …` or `X-Sdk-Date` not as `docs/signing.md` says, or `host` / `x-sdk-date` not signed.
    SignatureMalformed => (401, "SIGNATURE_MALFORMED", Client, AfterChange, false, "The request signature is malformed.");
    /// No access key has the id in `Access=`.
    AccessKeyUnknown => (401, "ACCESS_KEY_UNKNOWN", Client, AfterChange, false, "The access key is not valid.");
    /// `X-Sdk-Date` is more than 15 minutes from the gateway's clock (a replayed or badly timed request).
    SignatureSkewed => (401, "SIGNATURE_SKEWED", Client, AfterChange, false, "The request was signed too far from the current time.");
    /// The signature is not the request's under the access key's secret.
    SignatureMismatch => (401, "SIGNATURE_MISMATCH", Client, AfterChange, false, "The request signature does not match.");
    /// A bearer token that is not a JSON Web Token: not three base64url parts of JSON, longer than 8 KiB, or with an unknown critical extension.
    JwtMalformed => (401, "JWT_MALFORMED", Client, AfterChange, false, "The bearer token is malformed.");
    /// A token whose `alg` is `none`, unknown, or not the algorithm of the key it names (an RSA key never verifies an HS256 token).
    JwtAlgorithmRefused => (401, "JWT_ALGORITHM_REFUSED", Client, AfterChange, false, "The token's algorithm is not accepted.");
    /// No key of the identity provider's key set has the token's `kid`.
    JwtKeyUnknown => (401, "JWT_KEY_UNKNOWN", Client, AfterChange, false, "The token is signed with an unknown key.");
    /// The token's signature does not verify with its key.
    JwtSignatureInvalid => (401, "JWT_SIGNATURE_INVALID", Client, AfterChange, false, "The token's signature is not valid.");
    /// The token is past its `exp` (and the leeway), or has none.
    JwtExpired => (401, "JWT_EXPIRED", Client, AfterChange, false, "The token has expired.");
    /// The token's `nbf` is still ahead (beyond the leeway).
    JwtNotYetValid => (401, "JWT_NOT_YET_VALID", Client, AfterChange, false, "The token is not valid yet.");
    /// `iss` or `aud` is not the configured one, or the project or consumer claim is missing.
    JwtClaimsInvalid => (401, "JWT_CLAIMS_INVALID", Client, AfterChange, false, "The token's claims are not accepted.");
    /// The body is not the one `X-Sdk-Content-Sha256` names; nothing was sent upstream.
    BodyDigestMismatch => (401, "BODY_DIGEST_MISMATCH", Client, AfterChange, false, "The request body does not match its signed digest.");
    /// The caller's project has `billing_state: suspended`: nothing is served until it is active again.
    BillingSuspended => (402, "BILLING_SUSPENDED", Client, AfterChange, false, "The project is suspended for billing.");
    /// The project has spent its plan's prepaid request quota for the period; the detail says when the next period begins.
    QuotaSpent => (402, "QUOTA_SPENT", Client, AfterChange, false, "The project's prepaid request quota for this period is spent.");
    /// A request to the egress proxy without `Proxy-Authorization`.
    ProxyCredentialsMissing => (407, "PROXY_CREDENTIALS_MISSING", Client, AfterChange, false, "The egress proxy needs credentials in Proxy-Authorization.");
    /// `Proxy-Authorization` that is not the proxy's scheme, is given twice, or does not decode.
    ProxyCredentialsMalformed => (407, "PROXY_CREDENTIALS_MALFORMED", Client, AfterChange, false, "The Proxy-Authorization header is malformed.");
    /// `Proxy-Authorization` with an unknown user or a wrong password, or a token that is unknown, expired or revoked.
    ProxyCredentialsInvalid => (407, "PROXY_CREDENTIALS_INVALID", Client, AfterChange, false, "The proxy credentials are not valid.");
    /// An egress destination that `egress.allow_hosts` does not name.
    EgressHostDenied => (403, "EGRESS_HOST_DENIED", Client, AfterChange, false, "The egress proxy does not go to this destination.");
    /// An egress destination that resolves only to internal addresses (loopback, private, link-local…) that `egress.allow_hosts` does not list by address.
    EgressAddressDenied => (403, "EGRESS_ADDRESS_DENIED", Client, AfterChange, false, "The destination resolves to an address the egress proxy does not reach.");
    /// The caller's credentials are for another project than the `{project_id}` in the URL.
    ProjectMismatch => (403, "PROJECT_MISMATCH", Client, AfterChange, false, "The credentials are not for this project.");
    /// The caller's project has `billing_state: closed`.
    ProjectClosed => (403, "PROJECT_CLOSED", Client, AfterChange, false, "The project is closed.");
    /// A request whose `Origin` is not among the route's `cors.origins`.
    CorsOriginDenied => (403, "CORS_ORIGIN_DENIED", Client, AfterChange, false, "Requests from this origin are not allowed.");
    /// A CORS preflight for an origin, method or header the route's `cors` does not allow.
    CorsPreflightDenied => (403, "CORS_PREFLIGHT_DENIED", Client, AfterChange, false, "This cross-origin request is not allowed.");
    /// The route's `policy` does not let this caller make this request.
    PolicyDenied => (403, "POLICY_DENIED", Client, AfterChange, false, "The route's policy does not allow this request.");
    /// The client's address is inside the route's `deny_cidrs`, or outside its `allow_cidrs`.
    ClientAddressDenied => (403, "CLIENT_ADDRESS_DENIED", Client, AfterChange, false, "Requests from this address are not allowed.");
    /// No route matches the request path.
    RouteNotFound => (404, "ROUTE_NOT_FOUND", Client, AfterChange, false, "No route matches the request path.");
    /// No job with this id exists in the project of the URL (another project's job is not found either).
    JobNotFound => (404, "JOB_NOT_FOUND", Client, AfterChange, false, "No job with this id exists in this project.");
    /// The job has no result yet: it is still pending or running (its state says which).
    JobResultNotReady => (404, "JOB_RESULT_NOT_READY", Client, AfterRetryAfter, false, "This job has no result yet; poll the job, then follow its Location.");
    /// No admin resource has this id.
    ResourceNotFound => (404, "RESOURCE_NOT_FOUND", Client, AfterChange, false, "No resource has this id.");
    /// A static route has no regular file at this path inside its root (or the path tries to leave the root).
    FileNotFound => (404, "FILE_NOT_FOUND", Client, AfterChange, false, "No file exists at this path.");
    /// A route matches the path but not the method; `Allow` lists the methods it takes.
    MethodNotAllowed => (405, "METHOD_NOT_ALLOWED", Client, AfterChange, false, "The method is not allowed on this resource.");
    /// The client's `Accept` matches none of the media types the route produces; the body lists them.
    NotAcceptable => (406, "NOT_ACCEPTABLE", Client, AfterChange, false, "None of the available media types is acceptable.");
    /// The client's `Accept-Encoding` refuses `identity` and no encoding it accepts is available; the body lists the available ones.
    EncodingNotAcceptable => (406, "ENCODING_NOT_ACCEPTABLE", Client, AfterChange, false, "None of the available content codings is acceptable.");
    /// The request head did not arrive within `limits.header_timeout`.
    HeadTimeout => (408, "HEAD_TIMEOUT", Client, Immediately, true, "The request head was not received in time.");
    /// The request body made no progress for `limits.body_timeout`.
    BodyTimeout => (408, "BODY_TIMEOUT", Client, Immediately, true, "The request body was not received in time.");
    /// Another resource of this kind already has the name.
    NameTaken => (409, "NAME_TAKEN", Client, AfterChange, false, "A resource with this name already exists.");
    /// The body's `version` is not the resource's current version (another change came first).
    VersionConflict => (409, "VERSION_CONFLICT", Client, AfterChange, false, "The resource has changed since the version given; read it again.");
    /// An admin document that its resource's schema allows but that the model cannot take: it names a resource that is not there, overlaps another route, breaks a rule that relates its own parts (a redirect's parameters, `timeout` and `max_timeout`), names a file the gateway's machine does not have, or a merge patch whose result is not a valid item; `conflicts` lists each with its JSON pointer.
    ModelConflict => (409, "MODEL_CONFLICT", Client, AfterChange, false, "The document is valid, but the configuration cannot take it as it is now.");
    /// The change would break other resources (an upstream that routes still use); `conflicts` lists what.
    ResourceInUse => (409, "RESOURCE_IN_USE", Client, AfterChange, false, "Other resources depend on this one as it is.");
    /// A request with this `Idempotency-Key` and the same payload is still in flight; `Retry-After: 1`.
    IdempotencyKeyInFlight => (409, "IDEMPOTENCY_KEY_IN_FLIGHT", Client, AfterRetryAfter, false, "A request with this Idempotency-Key is still being processed; retry after the time in Retry-After.");
    /// The request with this `Idempotency-Key` was processed, and its response was larger than the route's `max_response_bytes`, so it cannot be replayed.
    IdempotencyResponseNotKept => (409, "IDEMPOTENCY_RESPONSE_NOT_KEPT", Client, AfterChange, false, "The request with this Idempotency-Key was already processed; its response was too large to keep for replay.");
    /// Other admin writes kept landing between this request's checks and its write (it was checked again each time); nothing was changed.
    ConcurrentChange => (409, "CONCURRENT_CHANGE", Client, Immediately, false, "Other changes kept landing while this one was checked; nothing was changed, and it may be sent again.");
    /// The admin resource was deleted (its tombstone is kept for a while).
    ResourceGone => (410, "RESOURCE_GONE", Client, AfterChange, false, "This resource has been deleted.");
    /// The job's retention (`async.retention`) is over: its result is no longer kept.
    JobExpired => (410, "JOB_EXPIRED", Client, AfterChange, false, "This job's result is no longer kept.");
    /// The request is for a version of an API that has been retired (`apis[].versions[]` with `status: retired`).
    ApiVersionRetired => (410, "API_VERSION_RETIRED", Client, AfterChange, false, "This version of the API has been retired.");
    /// The route requires `Content-Length` and the body came chunked.
    LengthRequired => (411, "LENGTH_REQUIRED", Client, AfterChange, false, "This route requires a Content-Length.");
    /// `If-Match` or `If-Unmodified-Since` is false for the current representation (or `If-None-Match` on a method other than GET/HEAD).
    PreconditionFailed => (412, "PRECONDITION_FAILED", Client, AfterChange, false, "A precondition in the request is not met.");
    /// The declared `Content-Length` exceeds the route's `max_body_bytes`; the body is not read.
    BodyTooLargeDeclared => (413, "BODY_TOO_LARGE", Client, AfterChange, true, "The request body is larger than this route accepts.");
    /// A chunked body crossed the route's `max_body_bytes` while streaming.
    BodyTooLargeStreamed => (413, "BODY_TOO_LARGE_STREAMED", Client, AfterChange, true, "The request body grew larger than this route accepts.");
    /// The route buffers bodies and the gateway's budget for buffered bodies (`limits.body_buffer_bytes`) cannot hold this one now: temporary, with `Retry-After`.
    BodyBufferFull => (413, "BODY_BUFFER_FULL", Gateway, AfterRetryAfter, false, "The gateway cannot take this request body right now; retry after the time in Retry-After.");
    /// The request target is longer than `limits.max_uri_bytes`.
    UriTooLong => (414, "URI_TOO_LONG", Client, AfterChange, true, "The request target is too long.");
    /// The request's `Content-Type` is not among the media types the route consumes (`Accept` lists them); decided before the body is read.
    UnsupportedMediaType => (415, "UNSUPPORTED_MEDIA_TYPE", Client, AfterChange, false, "The media type of the request body is not supported here.");
    /// The request's `Content-Encoding` uses a coding the route does not take (`Accept-Encoding` lists those it does).
    UnsupportedContentEncoding => (415, "UNSUPPORTED_CONTENT_ENCODING", Client, AfterChange, false, "The content coding of the request body is not supported here.");
    /// No range of the `Range` header overlaps the representation; `Content-Range: bytes */LENGTH`.
    RangeNotSatisfiable => (416, "RANGE_NOT_SATISFIABLE", Client, AfterChange, false, "None of the requested ranges can be satisfied.");
    /// The `Idempotency-Key` was used before with a different request payload (method, target, content type or body).
    IdempotencyKeyReused => (422, "IDEMPOTENCY_KEY_REUSED", Client, AfterChange, false, "This Idempotency-Key was already used with a different request payload.");
    /// A JSON body that breaks its OpenAPI operation's schema; `errors` lists each violation (`pointer` in the body, `schema` pointer, `keyword`, `detail`).
    SchemaInvalid => (422, "SCHEMA_INVALID", Client, AfterChange, false, "The request body does not match the schema of this operation.");
    /// A well-formed admin request body that breaks the resource's rules; `violations` lists each with its JSON pointer.
    ValidationFailed => (422, "VALIDATION_FAILED", Client, AfterChange, false, "The request body is not valid for this resource.");
    /// An `Expect` header with anything other than `100-continue`.
    ExpectationFailed => (417, "EXPECTATION_FAILED", Client, AfterChange, false, "The expectation in the Expect header cannot be met.");
    /// A route's `rate_limit` is exceeded for this caller's key; `Retry-After` says exactly when the request would be admitted (whole seconds, rounded up, never 0).
    RateLimited => (429, "RATE_LIMITED", Client, AfterRetryAfter, false, "Too many requests; retry after the time in Retry-After.");
    /// More requests in progress on the route or its upstream than its `max_in_flight`; `Retry-After: 1`.
    ConcurrencyLimited => (429, "CONCURRENCY_LIMITED", Gateway, AfterRetryAfter, false, "Too many requests are in progress; retry after the time in Retry-After.");
    /// The client's address failed to authenticate more often than `limits.auth_failures` allows; `Retry-After` says when it may try again.
    AuthFailuresLimited => (429, "AUTH_FAILURES_LIMITED", Client, AfterRetryAfter, false, "Too many failed authentication attempts; try again later.");
    /// A fault inside Portico (a handler panicked); details are logged, never sent.
    Internal => (500, "INTERNAL_ERROR", Gateway, Later, true, "An internal error occurred.");
    /// A method Portico does not know.
    MethodNotImplemented => (501, "METHOD_NOT_IMPLEMENTED", Client, AfterChange, true, "The request method is not implemented.");
    /// `CONNECT` on a listener that is not an egress proxy.
    ConnectNotSupported => (501, "CONNECT_NOT_SUPPORTED", Client, AfterChange, true, "CONNECT is not supported here.");
    /// An absolute-form `https://` request to the egress proxy (TLS goes through a `CONNECT` tunnel), or a request to it that names no destination.
    EgressTargetUnsupported => (400, "EGRESS_TARGET_UNSUPPORTED", Client, AfterChange, false, "The egress proxy takes absolute-form http:// requests and CONNECT host:port.");
    /// A request `Transfer-Encoding` other than chunked.
    TransferEncodingUnsupported => (501, "TRANSFER_ENCODING_UNSUPPORTED", Client, AfterChange, true, "The request transfer coding is not supported.");
    /// The upstream refused the connection.
    UpstreamConnectRefused => (502, "UPSTREAM_CONNECT_REFUSED", Upstream, Later, false, "The upstream service refused the connection.");
    /// The egress destination's name does not resolve.
    EgressResolveFailed => (502, "EGRESS_RESOLVE_FAILED", Upstream, Later, false, "The destination's name could not be resolved.");
    /// The upstream could not be reached (unreachable, name not resolved).
    UpstreamConnectFailed => (502, "UPSTREAM_CONNECT_FAILED", Upstream, Later, false, "The upstream service could not be reached.");
    /// Connecting to the upstream took longer than its `connect_timeout`.
    UpstreamConnectTimeout => (502, "UPSTREAM_CONNECT_TIMEOUT", Upstream, Later, false, "Connecting to the upstream service timed out.");
    /// The TLS handshake with an `https://` target failed (its certificate is not trusted or not for its name, or no protocol in common).
    UpstreamTlsFailed => (502, "UPSTREAM_TLS_FAILED", Upstream, Later, false, "A secure connection to the upstream service could not be established.");
    /// The upstream reset or closed the connection before a complete response head.
    UpstreamReset => (502, "UPSTREAM_RESET", Upstream, Later, false, "The upstream service closed the connection unexpectedly.");
    /// The upstream's response was not valid HTTP/1.1 (or HTTP/2: a malformed response or a protocol error).
    UpstreamInvalidResponse => (502, "UPSTREAM_INVALID_RESPONSE", Upstream, Later, false, "The upstream service sent an invalid response.");
    /// A route with `validate_responses: enforce`, and an upstream response its OpenAPI operation does not allow (an undeclared status or media type, or a body that breaks its schema).
    UpstreamResponseInvalid => (502, "UPSTREAM_RESPONSE_INVALID", Upstream, Later, false, "The upstream service sent a response its API description does not allow.");
    /// The upstream answered 306, which is unused and never relayed.
    UpstreamStatus306 => (502, "UPSTREAM_STATUS_306", Upstream, Later, false, "The upstream service sent an unusable status.");
    /// The node running the job stopped (or lost the store) before the upstream answered; the job's result says so. Sending the request again may repeat its work.
    JobInterrupted => (502, "JOB_INTERRUPTED", Gateway, Later, false, "The job was interrupted before the upstream service answered.");
    /// The upstream's answer to a job was larger than the route's `async.max_result_bytes`, or than the room left in `limits.job_results_bytes`: the job failed, and the answer was not kept.
    JobResultTooLarge => (502, "JOB_RESULT_TOO_LARGE", Upstream, AfterChange, false, "The upstream service's answer to this job was too large to keep.");
    /// Every target of the upstream is ejected after consecutive failures (passive health); `Retry-After` is when the first comes back.
    NoHealthyTarget => (503, "NO_HEALTHY_TARGET", Upstream, AfterRetryAfter, false, "No instance of the upstream service is available; retry after the time in Retry-After.");
    /// The shared rate-limit store (`cluster.redis`) could not decide within its budget and the limit says `on_store_failure: deny`; `Retry-After: 1`.
    RateLimitStoreUnavailable => (503, "RATE_LIMIT_STORE_UNAVAILABLE", Gateway, AfterRetryAfter, false, "The rate-limit service is unavailable; retry after the time in Retry-After.");
    /// The admin API's store (SQLite or PostgreSQL) failed to answer; nothing was changed. `Retry-After: 1`.
    StoreUnavailable => (503, "STORE_UNAVAILABLE", Gateway, AfterRetryAfter, false, "The store is unavailable; retry after the time in Retry-After.");
    /// The store that keeps jobs failed while a job was read; `Retry-After: 1`.
    JobsUnavailable => (503, "JOBS_UNAVAILABLE", Gateway, AfterRetryAfter, false, "Jobs cannot be read now; retry after the time in Retry-After.");
    /// The store that keeps idempotency keys failed; the request was not processed. `Retry-After: 1`.
    IdempotencyStoreUnavailable => (503, "IDEMPOTENCY_STORE_UNAVAILABLE", Gateway, AfterRetryAfter, false, "Idempotency keys cannot be checked now; retry after the time in Retry-After.");
    /// The request is for a version of an API that is disabled (`status: disabled`): no `Retry-After`, nothing changes by waiting.
    ApiVersionDisabled => (503, "API_VERSION_DISABLED", Gateway, AfterChange, false, "This version of the API is disabled.");
    /// The request is for a version of an API inside its maintenance window; `Retry-After` gives the seconds to its end.
    ApiVersionMaintenance => (503, "API_VERSION_MAINTENANCE", Gateway, AfterRetryAfter, false, "This version of the API is under maintenance; retry after the time in Retry-After.");
    /// The request's deadline (the client's `Timeout` or `timeout=`, else the route's `timeout`) passed before the upstream's response head arrived; the upstream request was cancelled.
    DeadlineExceeded => (504, "DEADLINE_EXCEEDED", Upstream, Later, false, "The upstream service did not answer before the request's deadline.");
    /// The request said `Cache-Control: only-if-cached` and the route's cache holds no response it may be answered with (RFC 9111 §5.2.1.7); nothing was sent upstream.
    NotCached => (504, "NOT_CACHED", Gateway, AfterChange, false, "No stored response can answer this request, and it asked not to go further (only-if-cached).");
    /// The request line's major version is not 1.
    VersionNotSupported => (505, "VERSION_NOT_SUPPORTED", Client, AfterChange, true, "The HTTP version is not supported.");
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `docs/errors.md`, generated from the catalog (a test keeps the file equal to this).
pub fn errors_markdown() -> String {
    let mut out = String::from(
        "# Portico error codes\n\n\
         Generated from `crates/portico-http/src/catalog.rs` by `portico codes --errors`; do not edit.\n\
         A test fails when this file and the catalog differ.\n\n\
         Every error Portico generates has a JSON body\n\
         `{\"error_code\", \"error_msg\", \"request_id\", \"status\", \"title\", \"detail\"}`; the\n\
         `error_code` is one of these, and each code always comes with the same status.\n\n\
         | error_code | status | source | retry | closes connection | meaning |\n\
         |---|---:|---|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            code.as_str(),
            code.status(),
            code.source(),
            code.retry(),
            if code.closes_connection() {
                "yes"
            } else {
                "no"
            },
            code.description().trim(),
        ));
    }
    out
}

/// `docs/contract.md`, generated from the table (a test keeps the file equal to this and
/// checks that every named proof is a test that exists).
pub fn contract_markdown() -> String {
    let mut out = String::from(
        "# The contract, row by row\n\n\
         Generated from `crates/portico-http/src/catalog.rs` by `portico codes --contract`; do not\n\
         edit. A test fails when this file and the catalog differ, or when a proof names a test\n\
         that does not exist. Proofs are `test file::test name` under `crates/*/tests/`.\n\n\
         | code | message | state | what Portico does | proof |\n\
         |---:|---|---|---|---|\n",
    );
    for row in STATUS_TABLE {
        let state = match row.state {
            RowState::Implemented => "implemented".to_string(),
            RowState::Never => "never generated (rule implemented)".to_string(),
            RowState::Planned { issue: 0 } => "not yet".to_string(),
            RowState::Planned { issue } => format!("not yet (issue {issue})"),
        };
        let proof: Vec<String> = row.proof.iter().map(|p| format!("`{p}`")).collect();
        let message = if row.in_table {
            row.message.to_string()
        } else {
            format!("{} (not in the table)", row.message)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.code,
            message,
            state,
            row.portico,
            if proof.is_empty() {
                "—".to_string()
            } else {
                proof.join("<br>")
            },
        ));
    }
    out.push_str(
        "\n## gRPC routes\n\n\
         On a route with `grpc: true`, every error Portico generates keeps the status above and\n\
         is sent as a gRPC Trailers-Only response: `content-type: application/grpc`,\n\
         `grpc-status` and `grpc-message` (the code's public message, percent-encoded) in the\n\
         head, `x-portico-error-code` with the `error_code`, and no body. What the upstream\n\
         sends (its `grpc-status` and `grpc-message` trailers included) is relayed as it is.\n\
         Proof: `grpc::portico_errors_on_grpc_routes_are_grpc_statuses`.\n\n",
    );
    out.push_str(&crate::grpc::grpc_table_markdown());
    out
}

/// The table printed by `portico codes`: code, message, meaning, and what Portico does.
pub fn codes_text() -> String {
    let mut out = String::new();
    for row in STATUS_TABLE {
        let state = match row.state {
            RowState::Implemented => "implemented".to_string(),
            RowState::Never => "never generated".to_string(),
            RowState::Planned { issue: 0 } => "planned".to_string(),
            RowState::Planned { issue } => format!("planned (issue {issue})"),
        };
        out.push_str(&format!("{} {} [{}]\n", row.code, row.message, state));
        out.push_str(&format!("    meaning: {}\n", row.meaning));
        out.push_str(&format!("    portico: {}\n", row.portico));
        let codes: Vec<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| c.status() == row.code)
            .map(|c| c.as_str())
            .collect();
        if !codes.is_empty() {
            out.push_str(&format!("    error codes: {}\n", codes.join(", ")));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_has_the_41_published_codes_plus_200() {
        let published = STATUS_TABLE.iter().filter(|r| r.in_table).count();
        assert_eq!(published, 41);
        assert!(status_row(200).is_some());
        let codes: HashSet<u16> = STATUS_TABLE.iter().map(|r| r.code).collect();
        assert_eq!(codes.len(), STATUS_TABLE.len(), "a code appears twice");
    }

    #[test]
    fn every_error_code_has_a_status_in_the_table() {
        for code in ErrorCode::ALL {
            let row =
                status_row(code.status()).unwrap_or_else(|| panic!("{code} outside the table"));
            assert!(row.in_table, "{code}: errors never use 200");
            assert!(code.status() >= 400, "{code} is not an error status");
            assert_ne!(code.status(), 431);
            assert_ne!(code.status(), 306);
        }
    }

    #[test]
    fn error_code_strings_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            let name = s.strip_prefix("PTC.").expect("prefix");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            );
            assert!(!code.message().is_empty() && !code.description().is_empty());
        }
    }

    #[test]
    fn implemented_rows_name_a_proof_and_planned_rows_do_not() {
        for row in STATUS_TABLE {
            match row.state {
                RowState::Implemented | RowState::Never => {
                    assert!(!row.proof.is_empty(), "{} has no proof", row.code)
                }
                RowState::Planned { .. } => assert!(row.proof.is_empty(), "{}", row.code),
            }
        }
    }

    #[test]
    fn table_meanings_are_the_published_text() {
        let seed = include_str!("../data/status-codes.txt");
        for row in STATUS_TABLE.iter().filter(|r| r.in_table) {
            let line = format!("| {} | {} | {} |", row.code, row.message, row.meaning);
            assert!(
                seed.contains(&line),
                "row {} differs from the seed table",
                row.code
            );
        }
    }
}
