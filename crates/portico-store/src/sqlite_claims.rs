//! The embedded store's claims on idempotency keys: kept in the process, not in the file.
//!
//! A claim says a request with the key is in flight. The embedded store serves one process,
//! and a request in flight ends with it, so its claim means nothing once the process is gone;
//! only the response kept when the request finishes must survive (it is written, durably,
//! by the group commit). Holding claims here takes a write off every new key's path, the
//! write the store's benchmark showed to cost most: an insert at a random place of the keys'
//! index, a page of the write-ahead log for each.
//!
//! The decisions are those of `CLAIM_IDEMPOTENCY_KEY`, which the shared store runs in SQL:
//! a key is taken when it is new or expired, or when its claim's lease ran out for the same
//! payload; otherwise what holds it says why not ([`crate::key_state`]).

use std::collections::HashMap;

use crate::{KeyClaim, KeyState};

/// A claim in flight.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub(crate) fingerprint: String,
    pub(crate) claim: String,
    pub(crate) lease_until_ms: i64,
    pub(crate) expires_ms: i64,
}

/// The claims in flight, by key.
#[derive(Debug)]
pub(crate) struct Claims {
    held: HashMap<String, InFlight>,
    /// The size at which claims whose lease ran out are swept (a request whose future was
    /// dropped mid-way gives no claim back).
    sweep_at: usize,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            held: HashMap::new(),
            sweep_at: 1024,
        }
    }
}

impl Claims {
    /// What the claims in flight say of `ask`: `None` when no claim holds the key (then the
    /// kept responses decide), else the claim's answer, the key taken over when its lease ran
    /// out for this payload or it expired.
    pub(crate) fn decide(&mut self, ask: &KeyClaim<'_>) -> Option<KeyState> {
        let held = self.held.get(ask.key)?;
        let takeable = held.expires_ms <= ask.now_ms
            || (held.lease_until_ms <= ask.now_ms && held.fingerprint == ask.fingerprint);
        if takeable {
            self.take(ask);
            return Some(KeyState::Claimed);
        }
        Some(crate::key_state(
            ask,
            &held.claim,
            &held.fingerprint,
            0,
            None,
            None,
            None,
        ))
    }

    /// Takes the key for `ask`.
    pub(crate) fn take(&mut self, ask: &KeyClaim<'_>) {
        if self.held.len() >= self.sweep_at {
            self.held.retain(|_, c| c.lease_until_ms > ask.now_ms);
            self.sweep_at = (self.held.len() * 2).max(1024);
        }
        self.held.insert(
            ask.key.to_string(),
            InFlight {
                fingerprint: ask.fingerprint.to_string(),
                claim: ask.claim.to_string(),
                lease_until_ms: ask.lease_until_ms,
                expires_ms: ask.expires_ms,
            },
        );
    }

    /// The claim on `key` if it is `claim`.
    pub(crate) fn held_by(&self, key: &str, claim: &str) -> Option<&InFlight> {
        self.held.get(key).filter(|c| c.claim == claim)
    }

    /// Gives up `key` if `claim` holds it.
    pub(crate) fn release(&mut self, key: &str, claim: &str) {
        if self.held_by(key, claim).is_some() {
            self.held.remove(key);
        }
    }

    /// Forgets claims whose keys expired at or before `ms`.
    pub(crate) fn purge(&mut self, ms: i64) {
        self.held.retain(|_, c| c.expires_ms > ms);
    }
}
