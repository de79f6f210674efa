//! Pure access checks: no sockets, no clock of its own, no store. The gateway asks; these
//! answer.
//!
//! - [`cidr`]: whether a client address is inside a network (`allow_cidrs`, `deny_cidrs`).
//! - [`secret`]: secrets that never print, compared in constant time, and the digests under
//!   which API keys are kept.
//! - [`cors`]: which browser origins may call a route.
//! - [`egress`]: where the egress proxy may go (`allow_hosts`, and the SSRF guard).
//! - [`failures`]: how often one client address may fail to authenticate.
//! - [`jwt`]: JSON Web Tokens from an identity provider's key set.
//! - [`password`]: passwords kept as PBKDF2-HMAC-SHA256.
//! - [`ratelimit`]: GCRA rate limits per key.
//! - [`rules`]: a route's `policy`, ordered `allow` / `deny` rules.
//! - [`signature`]: signed requests (`SDK-HMAC-SHA256`), to verify and to make.
//! - [`transform`]: field projection and masking of JSON bodies (203).

pub mod cidr;
pub mod cors;
pub mod egress;
pub mod failures;
pub mod jwt;
pub mod password;
pub mod ratelimit;
pub mod rules;
pub mod secret;
pub mod signature;
pub mod transform;

pub use cidr::Cidr;
pub use secret::{Secret, ct_eq, from_hex, hex, sha256, sha256_hex};
