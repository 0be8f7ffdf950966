//! Retry policies: attempts, exponential backoff with full jitter, timeouts, deadlines.

use std::time::Duration;

/// How a step (or a hook) is retried.
///
/// Only errors marked transient ([`StepError::transient`](crate::StepError::transient))
/// are retried. The delay before retry `n` (counting from 1) is drawn uniformly from
/// `[0, min(max_delay, base_delay * 2^(n-1))]` ("full jitter"), so concurrent retries
/// spread out instead of arriving together.
///
/// ```
/// use std::time::Duration;
/// use sluice_txn::RetryPolicy;
///
/// let policy = RetryPolicy::new(5)
///     .with_base_delay(Duration::from_millis(100))
///     .with_max_delay(Duration::from_secs(2))
///     .with_attempt_timeout(Duration::from_secs(30));
/// assert_eq!(policy.delay_cap(1), Duration::from_millis(100));
/// assert_eq!(policy.delay_cap(3), Duration::from_millis(400));
/// assert_eq!(policy.delay_cap(10), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Cap of the first retry's delay.
    pub base_delay: Duration,
    /// Upper bound of every delay.
    pub max_delay: Duration,
    /// Limit of each attempt; an attempt that exceeds it fails with a transient error.
    pub attempt_timeout: Option<Duration>,
    /// Limit of all attempts and delays together, measured on the engine's clock. No retry
    /// is started whose delay would end past it.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    /// One attempt: no retry.
    fn default() -> Self {
        Self::new(1)
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts, 100 ms base delay, 30 s maximum delay, no timeouts.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            attempt_timeout: None,
            deadline: None,
        }
    }

    /// No retries.
    pub fn no_retry() -> Self {
        Self::new(1)
    }

    /// Set the first retry's delay cap.
    pub fn with_base_delay(mut self, base: Duration) -> Self {
        self.base_delay = base;
        self
    }

    /// Set the upper bound of every delay.
    pub fn with_max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// Limit each attempt.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Limit all attempts together.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The largest delay before retry number `retry` (1 = the retry after the first
    /// failure): `min(max_delay, base_delay * 2^(retry-1))`. Never decreases as `retry`
    /// grows.
    pub fn delay_cap(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(63);
        let factor = 1u128 << exponent;
        let nanos = self.base_delay.as_nanos().saturating_mul(factor);
        let capped = nanos.min(self.max_delay.as_nanos());
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }

    /// The delay before retry number `retry` given a uniform sample `unit` in `[0, 1]`:
    /// `unit * delay_cap(retry)`. Values of `unit` outside `[0, 1]` are clamped.
    pub fn jittered_delay(&self, retry: u32, unit: f64) -> Duration {
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        self.delay_cap(retry).mul_f64(unit)
    }

    /// The delay before retry number `retry`, with a random jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.jittered_delay(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_then_saturate() {
        let p = RetryPolicy::new(10)
            .with_base_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(50));
        let caps: Vec<u128> = (1..=5).map(|n| p.delay_cap(n).as_millis()).collect();
        assert_eq!(caps, vec![10, 20, 40, 50, 50]);
        assert_eq!(p.delay_cap(1000), Duration::from_millis(50));
    }

    #[test]
    fn jitter_is_clamped_to_the_cap() {
        let p = RetryPolicy::new(3).with_base_delay(Duration::from_millis(8));
        assert_eq!(p.jittered_delay(2, 2.0), Duration::from_millis(16));
        assert_eq!(p.jittered_delay(2, -1.0), Duration::ZERO);
        assert_eq!(p.jittered_delay(2, 0.5), Duration::from_millis(8));
    }

    #[test]
    fn at_least_one_attempt() {
        assert_eq!(RetryPolicy::new(0).max_attempts, 1);
    }
}
