//! A rate per source IP address and one for all sources together, for
//! work a stranger can make us do. Sources are counted by IP, not port:
//! a port costs nothing to change. The table of sources is bounded; when it
//! is full the source seen longest ago makes room, and the total rate
//! still holds however many sources there are.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use crate::token_bucket::TokenBucket;

#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Per source: so many a second, this many at once.
    pub per_source: (u64, u64),
    /// All sources together.
    pub total: (u64, u64),
    /// Sources remembered at once.
    pub sources: usize,
}

pub struct SourceLimit {
    rates: Rates,
    buckets: HashMap<IpAddr, TokenBucket>,
    /// Sources in the order they were first seen, for eviction.
    order: VecDeque<IpAddr>,
    total: TokenBucket,
}

impl SourceLimit {
    pub fn new(rates: Rates, now: Instant) -> Self {
        SourceLimit {
            rates,
            buckets: HashMap::new(),
            order: VecDeque::new(),
            total: TokenBucket::new(rates.total.0, rates.total.1, now),
        }
    }

    /// Takes one unit for `source`; false: over its rate or the total.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        if !self.buckets.contains_key(&source) {
            if self.order.len() >= self.rates.sources {
                if let Some(oldest) = self.order.pop_front() {
                    self.buckets.remove(&oldest);
                }
            }
            let (rate, burst) = self.rates.per_source;
            self.buckets
                .insert(source, TokenBucket::new(rate, burst, now));
            self.order.push_back(source);
        }
        let own = self
            .buckets
            .get_mut(&source)
            .is_some_and(|bucket| bucket.take(now, 1));
        own && self.total.take(now, 1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATES: Rates = Rates {
        per_source: (1, 4),
        total: (10, 20),
        sources: 3,
    };

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let now = Instant::now();
        let mut limit = SourceLimit::new(RATES, now);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..100).filter(|_| limit.allow(now, ip)).count();
        assert_eq!(allowed, 4);
        assert!(limit.allow(now + Duration::from_secs(1), ip));
        assert!(!limit.allow(now + Duration::from_secs(1), ip));
    }

    #[test]
    fn many_sources_share_the_total_and_the_table_stays_bounded() {
        let now = Instant::now();
        let mut limit = SourceLimit::new(RATES, now);
        let allowed = (0..1000u32)
            .filter(|i| limit.allow(now, IpAddr::from(i.to_be_bytes())))
            .count();
        assert_eq!(allowed, 20);
        assert_eq!(limit.buckets.len(), 3);
        assert_eq!(limit.order.len(), 3);
    }
}
