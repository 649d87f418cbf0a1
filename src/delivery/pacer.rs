//! A ceiling on requests per second to Segment ([`Pacer`]), shared by every request of a
//! process (a backfill's files and batches, their retries and splits).
//!
//! Segment takes about 1,000 requests a second per workspace and answers 429 beyond that:
//! a long backfill must stay well under it while live traffic shares the workspace. The
//! pacer spaces the starts of requests at least `1/n` s apart (rounded up), counted from when
//! each really started: so no second ever holds more than `n` starts, however late the
//! process wakes. A 429 holds every request back until the time Segment gave
//! ([`Pacer::hold`]).
//!
//! Hand-written rather than a rate-limiting crate: the hold after a 429 is part of it, and
//! it is a few lines over tokio's timer (docs/development.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per second, at most.
#[derive(Debug)]
pub struct Pacer {
    spacing: Duration,
    /// The earliest the next request may start (spacing, or a hold after a 429).
    next: Mutex<Instant>,
}

impl Pacer {
    /// At most `per_second` requests a second (at least 1).
    pub fn per_second(per_second: u32) -> Self {
        let per_second = u64::from(per_second.max(1));
        Pacer {
            spacing: Duration::from_nanos(1_000_000_000u64.div_ceil(per_second)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until a request may start, and counts it as started.
    pub async fn ready(&self) {
        loop {
            let wait = match self.next.lock() {
                Ok(mut next) => self.try_start(&mut next, Instant::now()),
                // A panic elsewhere while holding it: pace no more than that.
                Err(_) => None,
            };
            match wait {
                None => return,
                Some(at) => tokio::time::sleep_until(at.into()).await,
            }
        }
    }

    /// Starts a request at `now` if it may (`None`), else says when to try again.
    fn try_start(&self, next: &mut Instant, now: Instant) -> Option<Instant> {
        if now < *next {
            return Some(*next);
        }
        *next = now + self.spacing;
        None
    }

    /// Holds every request back until `until` (Segment answered 429).
    pub fn hold(&self, until: Instant) {
        if let Ok(mut next) = self.next.lock()
            && *next < until
        {
            *next = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts requests as the pacer lets them, on a virtual clock, each `late` after the time
    /// the pacer named (a busy process wakes late); returns the start times.
    fn starts(
        pacer: &Pacer,
        n: usize,
        from: Instant,
        late: impl Fn(usize) -> Duration,
    ) -> Vec<Instant> {
        let mut next = pacer.next.lock().unwrap();
        let mut now = from;
        let mut out = Vec::new();
        while out.len() < n {
            match pacer.try_start(&mut next, now) {
                None => out.push(now),
                Some(at) => now = at + late(out.len()),
            }
        }
        out
    }

    fn most_in_a_second(starts: &[Instant]) -> usize {
        let second = Duration::from_secs(1);
        (0..starts.len())
            .map(|i| {
                starts[i..]
                    .iter()
                    .take_while(|t| **t < starts[i] + second)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn never_more_than_n_starts_in_any_second() {
        let t0 = Instant::now();
        for n in [1, 3, 7, 20, 100, 999] {
            let pacer = Pacer::per_second(n);
            let on_time = starts(&pacer, 3 * n as usize + 5, t0, |_| Duration::ZERO);
            assert!(most_in_a_second(&on_time) <= n as usize, "n = {n}");
            let pacer = Pacer::per_second(n);
            let jittery = starts(&pacer, 3 * n as usize + 5, t0, |i| {
                Duration::from_micros((i as u64 * 7_919) % 3_000)
            });
            assert!(
                most_in_a_second(&jittery) <= n as usize,
                "n = {n}, late wakes"
            );
        }
        // 100 requests at 20 a second take about 5 s.
        let s = starts(&Pacer::per_second(20), 100, t0, |_| Duration::ZERO);
        assert!(s[99] - s[0] >= Duration::from_millis(4950));
    }

    #[test]
    fn a_hold_delays_every_request_until_it_ends() {
        let t0 = Instant::now();
        let pacer = Pacer::per_second(1000);
        pacer.hold(t0 + Duration::from_secs(2));
        let s = starts(&pacer, 3, t0, |_| Duration::ZERO);
        assert!(s[0] >= t0 + Duration::from_secs(2));
        // An earlier hold does not shorten a later one.
        pacer.hold(t0);
        let next = starts(&pacer, 1, t0, |_| Duration::ZERO)[0];
        assert!(next > s[2]);
    }
}
