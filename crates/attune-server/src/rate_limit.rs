//! Per-key request rates of public keys: a public key is in every visitor's browser, so anyone can use it, and
//! one client must not be able to flood the tenant's ingest and serving. Each key has a token bucket (GCRA, from
//! `governor`); a request beyond it is answered `429 rate_limited` with `Retry-After`. Secret keys are the
//! shop's own backend and are not limited.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// How fast each public key may send requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKeyRate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests that may arrive at once.
    pub burst: u32,
}

impl Default for PublicKeyRate {
    fn default() -> Self {
        Self { per_second: 50, burst: 200 }
    }
}

/// The buckets of every public key of this process.
pub struct PublicKeyLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl PublicKeyLimits {
    pub fn new(rate: PublicKeyRate) -> Self {
        let per_second = NonZeroU32::new(rate.per_second.max(1)).expect("at least one");
        let burst = NonZeroU32::new(rate.burst.max(1)).expect("at least one");
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key_id`'s bucket, or says how long until one is free.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        self.limiter.check_key(&key_id.to_string()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_key() {
        let limits = PublicKeyLimits::new(PublicKeyRate { per_second: 10, burst: 3 });
        assert!((0..3).all(|_| limits.check("k1").is_ok()));
        let wait = limits.check("k1").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limits.check("k2").is_ok(), "another key has its own bucket");
    }
}
