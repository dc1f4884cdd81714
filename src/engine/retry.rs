//! Retry policy as data and one pure function deciding the next wait; imports nothing but std
//! (no clock, no RNG: elapsed time and jitter are parameters).
//!
//! Rules and where they come from:
//! - 429 and 503 carry `Retry-After` (seconds): wait at least that long, then retry the same
//!   request; keep doing so while they continue (https://learn.microsoft.com/graph/throttling,
//!   https://learn.microsoft.com/graph/errors). A throttled request was not executed, so a plain
//!   retry is safe even for a POST.
//! - Without `Retry-After` (503/504/500, dropped connection): exponential backoff with jitter.
//! - Replication (a directory object just written is not yet visible to the next call:
//!   https://learn.microsoft.com/graph/aad-advanced-queries, "eventual consistency"): poll with a
//!   short, slowly growing delay (500 ms, x1.5, capped at 2 s) within a time budget (5 min by
//!   default). Fixed long sleeps (the console's "one minute" waits) cost wall time for nothing.

/// How long and how often the driver retries one step. Plain data: the UI may tune it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Attempts of one step for throttling, unavailability and network errors (the first try
    /// included). Replication polls do not count: they have their own time budget.
    pub max_attempts: u32,
    /// How long one step may wait for a new object to replicate (sum of the waits).
    pub replication_budget_ms: u64,
    /// First replication poll delay; grows by `replication_growth_pct` percent per poll.
    pub replication_initial_ms: u64,
    pub replication_growth_pct: u32,
    /// Longest delay between two replication polls.
    pub replication_max_ms: u64,
    /// First backoff when no `Retry-After` is given; doubles per attempt.
    pub initial_backoff_ms: u64,
    /// Longest computed backoff.
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` the driver honours; a longer one ends the step (transient error).
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            replication_budget_ms: 5 * 60 * 1000,
            replication_initial_ms: 500,
            replication_growth_pct: 150,
            replication_max_ms: 2000,
            initial_backoff_ms: 1000,
            max_backoff_ms: 30_000,
            max_retry_after_ms: 5 * 60 * 1000,
        }
    }
}

/// Why a step is retried. The UI shows [`RetryReason::text`]; tests match on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RetryReason {
    /// 429 Too Many Requests (`Retry-After` in ms when given).
    Throttled { retry_after_ms: Option<u64> },
    /// 500/502/503/504 (`Retry-After` in ms when given).
    Unavailable { retry_after_ms: Option<u64> },
    /// An object written moments ago is not visible yet.
    Replication,
    /// No HTTP answer (dropped connection, timeout).
    Network,
}

impl RetryReason {
    /// A short sentence for the progress line ("retrying in 3 s: …").
    pub fn text(&self) -> &'static str {
        match self {
            RetryReason::Throttled { .. } => "Microsoft Graph asked us to slow down",
            RetryReason::Unavailable { .. } => "Microsoft Graph is temporarily unavailable",
            RetryReason::Replication => "waiting for Azure to make the new object visible",
            RetryReason::Network => "the connection to Microsoft Graph was lost",
        }
    }

    /// The server's `Retry-After`, if any.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            RetryReason::Throttled { retry_after_ms }
            | RetryReason::Unavailable { retry_after_ms } => *retry_after_ms,
            _ => None,
        }
    }

    /// Of two reasons met in one round trip (e.g. sub-responses of a `$batch`), the one that
    /// must govern the wait: a `Retry-After` wins, the longer one first.
    pub fn stronger(self, other: RetryReason) -> RetryReason {
        match (self.retry_after_ms(), other.retry_after_ms()) {
            (Some(a), Some(b)) => {
                if b > a {
                    other
                } else {
                    self
                }
            }
            (Some(_), None) => self,
            (None, Some(_)) => other,
            (None, None) => match (self, other) {
                (RetryReason::Replication, o) | (o, RetryReason::Replication) => o,
                (s, _) => s,
            },
        }
    }
}

/// The wait before the next attempt, or `None` to give up.
///
/// `attempt` counts the failed attempts of this step so far (1 after the first failure),
/// `elapsed_ms` is the time this step has already waited for replication (sum of its replication
/// waits), `jitter` is any random number (used only for computed backoffs).
pub fn next_delay(
    policy: &RetryPolicy,
    attempt: u32,
    reason: RetryReason,
    elapsed_ms: u64,
    jitter: u32,
) -> Option<u64> {
    let attempt = attempt.max(1);
    match reason {
        RetryReason::Replication => {
            let remaining = policy.replication_budget_ms.checked_sub(elapsed_ms)?;
            if remaining == 0 {
                return None;
            }
            let mut d = policy.replication_initial_ms.max(1);
            for _ in 1..attempt {
                let grown = d.saturating_mul(u64::from(policy.replication_growth_pct)) / 100;
                // A delay that no longer changes stays put: stop (growth <= 100 % never reaches
                // the cap, and `attempt` may be large).
                let fixed = grown == d;
                d = grown;
                if fixed || d >= policy.replication_max_ms {
                    break;
                }
            }
            Some(d.min(policy.replication_max_ms).min(remaining))
        }
        RetryReason::Throttled { retry_after_ms } | RetryReason::Unavailable { retry_after_ms } => {
            if attempt >= policy.max_attempts {
                return None;
            }
            match retry_after_ms {
                // Honour Retry-After as given: never shorter (GTHROTTLE).
                Some(ra) if ra > policy.max_retry_after_ms => None,
                Some(ra) => Some(ra),
                None => Some(backoff(policy, attempt, jitter)),
            }
        }
        RetryReason::Network => {
            if attempt >= policy.max_attempts {
                return None;
            }
            Some(backoff(policy, attempt, jitter))
        }
    }
}

/// `initial * 2^(attempt-1)`, capped, plus up to a quarter of it as jitter (capped again).
fn backoff(policy: &RetryPolicy, attempt: u32, jitter: u32) -> u64 {
    let shift = (attempt - 1).min(20);
    let base = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << shift)
        .min(policy.max_backoff_ms);
    let spread = base / 4 + 1;
    base.saturating_add(u64::from(jitter) % spread)
        .min(policy.max_backoff_ms.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_exactly() {
        let p = RetryPolicy::default();
        let r = RetryReason::Throttled {
            retry_after_ms: Some(7000),
        };
        assert_eq!(next_delay(&p, 1, r, 0, 12345), Some(7000));
        let r = RetryReason::Unavailable {
            retry_after_ms: Some(2000),
        };
        assert_eq!(next_delay(&p, 3, r, 0, u32::MAX), Some(2000));
    }

    #[test]
    fn too_long_retry_after_or_too_many_attempts_give_up() {
        let p = RetryPolicy::default();
        let r = RetryReason::Throttled {
            retry_after_ms: Some(p.max_retry_after_ms + 1),
        };
        assert_eq!(next_delay(&p, 1, r, 0, 0), None);
        let r = RetryReason::Throttled {
            retry_after_ms: Some(1000),
        };
        assert_eq!(next_delay(&p, p.max_attempts, r, 0, 0), None);
        assert_eq!(
            next_delay(&p, p.max_attempts, RetryReason::Network, 0, 0),
            None
        );
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_cap() {
        let p = RetryPolicy::default();
        for j in [0u32, 1, 999, u32::MAX] {
            let d1 = next_delay(&p, 1, RetryReason::Network, 0, j).unwrap();
            assert!((1000..=1250).contains(&d1), "{d1}");
            let d3 = next_delay(
                &p,
                3,
                RetryReason::Unavailable {
                    retry_after_ms: None,
                },
                0,
                j,
            )
            .unwrap();
            assert!((4000..=5000).contains(&d3), "{d3}");
            let d7 = next_delay(&p, 7, RetryReason::Network, 0, j).unwrap();
            assert_eq!(d7, 30_000);
        }
    }

    #[test]
    fn replication_polls_short_and_grows_to_cap() {
        let p = RetryPolicy::default();
        let seq: Vec<u64> = (1..=6)
            .map(|a| next_delay(&p, a, RetryReason::Replication, 0, 77).unwrap())
            .collect();
        assert_eq!(seq, vec![500, 750, 1125, 1687, 2000, 2000]);
        // Many polls are allowed: the budget, not max_attempts, ends them.
        assert_eq!(
            next_delay(&p, 100, RetryReason::Replication, 10_000, 0),
            Some(2000)
        );
    }

    #[test]
    fn replication_budget_ends_polling() {
        let p = RetryPolicy::default();
        let b = p.replication_budget_ms;
        assert_eq!(
            next_delay(&p, 9, RetryReason::Replication, b - 300, 0),
            Some(300)
        );
        assert_eq!(next_delay(&p, 9, RetryReason::Replication, b, 0), None);
        assert_eq!(next_delay(&p, 9, RetryReason::Replication, b + 1, 0), None);
    }

    /// Found by `prop_retry_delay`: with a growth of 100 % or less the delay never reaches the cap,
    /// and the loop ran once per past attempt (about 4e9 rounds for `u32::MAX`: minutes).
    #[test]
    fn replication_delay_without_growth_is_computed_at_once() {
        let flat = RetryPolicy {
            replication_growth_pct: 100,
            ..RetryPolicy::default()
        };
        let t0 = std::time::Instant::now();
        let d = next_delay(&flat, u32::MAX, RetryReason::Replication, 0, 0);
        assert_eq!(d, Some(500));
        let shrinking = RetryPolicy {
            replication_growth_pct: 50,
            ..RetryPolicy::default()
        };
        let d = next_delay(&shrinking, u32::MAX, RetryReason::Replication, 0, 0);
        assert_eq!(d, Some(0));
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    }

    /// Found by `prop_retry_delay`: a backoff near `u64::MAX` plus jitter overflowed (a panic in a
    /// debug build, a wrap to a tiny delay in release).
    #[test]
    fn backoff_near_the_largest_delay_does_not_overflow() {
        let huge = RetryPolicy {
            initial_backoff_ms: u64::MAX - 5000,
            max_backoff_ms: u64::MAX - 5000,
            ..RetryPolicy::default()
        };
        let throttled = RetryReason::Throttled {
            retry_after_ms: None,
        };
        assert_eq!(
            next_delay(&huge, 1, throttled, 0, 5001),
            Some(u64::MAX - 5000)
        );
        assert_eq!(
            next_delay(&huge, 2, RetryReason::Network, 0, u32::MAX),
            Some(u64::MAX - 5000)
        );
    }

    #[test]
    fn stronger_reason_prefers_longest_retry_after() {
        let t = |ms| RetryReason::Throttled {
            retry_after_ms: Some(ms),
        };
        assert_eq!(t(1000).stronger(t(3000)), t(3000));
        assert_eq!(RetryReason::Replication.stronger(t(5)), t(5));
        assert_eq!(
            RetryReason::Replication.stronger(RetryReason::Network),
            RetryReason::Network
        );
        assert_eq!(
            RetryReason::Replication.stronger(RetryReason::Replication),
            RetryReason::Replication
        );
    }
}
