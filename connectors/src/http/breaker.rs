//! A circuit breaker: after a run of failures a source is left alone for a while, then tried once.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// No request goes out until this instant.
    Open {
        until: Instant,
    },
    /// The cool-down is over: one request is let through to see whether the source is back.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures_in_a_row: u32,
    state: BreakerState,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures_in_a_row: 0,
            state: BreakerState::Closed,
        }
    }

    /// Whether a request may go out now; `Err` holds when the breaker opens again.
    pub fn admit(&mut self, now: Instant) -> Result<(), Instant> {
        match self.state {
            BreakerState::Open { until } if now < until => Err(until),
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn success(&mut self) {
        self.failures_in_a_row = 0;
        self.state = BreakerState::Closed;
    }

    /// Counts a failed attempt; returns true when this failure opened the breaker.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let trips =
            self.state == BreakerState::HalfOpen || self.failures_in_a_row >= self.threshold;
        if trips {
            self.state = BreakerState::Open {
                until: now + self.cooldown,
            };
        }
        trips
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_lets_one_request_through_after_the_cooldown_and_closes_on_success()
    {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(60));
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert!(b.failure(t0), "the third failure in a row opens it");
        assert_eq!(
            b.admit(t0 + Duration::from_secs(59)),
            Err(t0 + Duration::from_secs(60))
        );
        assert_eq!(b.admit(t0 + Duration::from_secs(61)), Ok(()));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(
            b.failure(t0 + Duration::from_secs(61)),
            "a failed trial opens it again"
        );
        assert!(b.admit(t0 + Duration::from_secs(62)).is_err());
        assert_eq!(b.admit(t0 + Duration::from_secs(200)), Ok(()));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(
            !b.failure(t0 + Duration::from_secs(201)),
            "the count starts over"
        );
    }
}
