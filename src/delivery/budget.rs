//! Time: every invocation answers before its Lambda deadline ([`Budget`]), and whatever it
//! waits on (the secret, Segment, the queues) is bounded by what is left of it.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::settings::secret::SettingsError;

/// An invocation's time: until the Lambda deadline, less a margin kept to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Time kept back from the Lambda deadline to answer.
    pub margin: Duration,
    /// The time budget when there is no usable Lambda deadline (local runs).
    pub default: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            margin: Duration::from_millis(1500),
            default: Duration::from_secs(25),
        }
    }
}

impl Budget {
    /// When this invocation must have answered by: the Lambda deadline (epoch ms) less the
    /// margin. A deadline that is not a plausible future epoch (in the past, or more than 15
    /// minutes away: `cargo lambda watch` sends `600000`, a duration) falls back to the
    /// default budget.
    pub fn deadline(&self, lambda_deadline_ms: Option<u64>) -> Instant {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let budget = lambda_deadline_ms
            .and_then(|d| plausible_budget(d, now_ms))
            .unwrap_or(self.default);
        Instant::now() + budget.saturating_sub(self.margin)
    }
}

/// Lambda's longest timeout: a deadline further away than this is not a deadline.
const MAX_LAMBDA_BUDGET: Duration = Duration::from_secs(15 * 60);

/// The time left before `deadline_ms` (epoch ms), when that is a plausible Lambda deadline.
fn plausible_budget(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (!left.is_zero() && left <= MAX_LAMBDA_BUDGET).then_some(left)
}

/// Time kept for parking when a queue may be written: this much, plus
/// [`PARK_RESERVE_PER_MESSAGE`] per message (SQS takes 10 per call, 8 calls in flight), never
/// more than a third of the time left.
pub const PARK_RESERVE_BASE: Duration = Duration::from_millis(500);
pub const PARK_RESERVE_PER_MESSAGE: Duration = Duration::from_millis(1);

/// When delivery must stop so that parking `messages` still fits before `deadline`.
pub fn deliver_deadline(now: Instant, deadline: Instant, messages: usize) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let per_message =
        PARK_RESERVE_PER_MESSAGE.saturating_mul(u32::try_from(messages).unwrap_or(u32::MAX));
    let reserve = PARK_RESERVE_BASE.saturating_add(per_message).min(left / 3);
    deadline.checked_sub(reserve).unwrap_or(deadline)
}

/// `read` (the secret), unless `deadline` comes first: then the settings count as
/// unavailable (a stalled Secrets Manager must not keep the invocation from answering).
pub async fn by_deadline<T>(
    deadline: Instant,
    read: impl Future<Output = Result<T, SettingsError>>,
) -> Result<T, SettingsError> {
    tokio::time::timeout_at(deadline.into(), read)
        .await
        .unwrap_or_else(|_| {
            Err(SettingsError::Unavailable(
                "reading the secret did not finish before the deadline".into(),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_deadlines_are_trusted() {
        let now = 1_764_331_200_000;
        assert_eq!(
            plausible_budget(now + 3_000, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            plausible_budget(now + 900_000, now),
            Some(Duration::from_secs(900))
        );
        // cargo lambda's emulator sends a duration, not an epoch.
        assert_eq!(plausible_budget(600_000, now), None);
        assert_eq!(plausible_budget(now, now), None);
        assert_eq!(plausible_budget(now - 1, now), None);
        assert_eq!(plausible_budget(now + 900_001, now), None);
        assert_eq!(plausible_budget(u64::MAX, now), None);
    }

    #[test]
    fn parking_gets_a_slice_that_grows_with_the_messages() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(24);
        let reserve = |n| deadline - deliver_deadline(now, deadline, n);
        assert_eq!(reserve(0), Duration::from_millis(500));
        assert_eq!(reserve(100), Duration::from_millis(600));
        assert_eq!(reserve(5_000), Duration::from_millis(5_500));
        // Never more than a third of what is left.
        assert_eq!(reserve(usize::MAX), Duration::from_secs(8));
        let soon = now + Duration::from_millis(300);
        assert_eq!(
            soon - deliver_deadline(now, soon, 100),
            Duration::from_millis(100)
        );
    }
}
