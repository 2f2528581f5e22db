//! A tracker outage: since when, the last error, and when to read the tracker again. Pure: the caller
//! passes the time.

use std::time::Duration;

/// The first wait before the tracker is read again; each failure after it doubles the wait.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between two reads.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// A tracker that stopped working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage<T> {
    /// When it first failed.
    pub since: T,
    /// The last error, as shown to the user: the call that met it, and its cause.
    pub error: String,
    /// The last cause alone (the tracker's own words), to tell a new failure from the same one met by
    /// another call.
    pub cause: String,
    /// When to read it again.
    pub retry_at: T,
    /// The wait after the next failure.
    pub delay: Duration,
}

/// What to do about an outage now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not yet time to read the tracker again.
    Wait,
    /// Read it now.
    TryNow,
    /// It has been down longer than allowed: stop claiming for good and drain.
    GiveUp,
}

impl<T> Outage<T>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T> + std::ops::Sub<T, Output = Duration>,
{
    /// The tracker failed at `now`: `what` was being done (`claiming bd-3`), `cause` is why.
    pub fn new(what: &str, cause: &str, now: T) -> Self {
        let (error, cause) = (format!("{what}: {cause}"), cause.to_string());
        Outage { since: now, error, cause, retry_at: now + FIRST_DELAY, delay: FIRST_DELAY * 2 }
    }

    /// Another failure: whether it is worth telling the user. Only a new cause is; the same cause met
    /// by another call is not news.
    pub fn note(&mut self, what: &str, cause: &str) -> bool {
        if self.cause == cause {
            return false;
        }
        self.error = format!("{what}: {cause}");
        self.cause = cause.to_string();
        true
    }

    /// A read failed again at `now`: the next one waits twice as long (at most [`MAX_DELAY`]).
    pub fn failed_again(&mut self, now: T) {
        self.retry_at = now + self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }

    /// What to do at `now`, given how long an outage may last.
    pub fn next(&self, now: T, limit: Duration) -> Retry {
        if now - self.since >= limit {
            Retry::GiveUp
        } else if now >= self.retry_at {
            Retry::TryNow
        } else {
            Retry::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock for the tests: a Duration since some start.
    type T = Duration;

    fn s(secs: u64) -> T {
        Duration::from_secs(secs)
    }

    #[test]
    fn reads_again_with_doubling_waits_then_gives_up_at_the_limit() {
        let limit = s(600);
        let mut o = Outage::new("reading the tracker", "x", s(100));
        assert_eq!(o.next(s(100), limit), Retry::Wait);
        assert_eq!(o.next(s(101), limit), Retry::TryNow);
        let mut at = s(101);
        let mut waits = Vec::new();
        for _ in 0..8 {
            o.failed_again(at);
            waits.push((o.retry_at - at).as_secs());
            assert_eq!(o.next(at, limit), Retry::Wait);
            at = o.retry_at;
            assert_eq!(o.next(at, limit), Retry::TryNow);
        }
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(o.next(s(699), limit), Retry::TryNow);
        assert_eq!(o.next(s(700), limit), Retry::GiveUp);
    }

    #[test]
    fn only_a_new_cause_is_worth_saying() {
        let mut o = Outage::new("reading the tracker", "bad line 3", s(0));
        assert_eq!(o.error, "reading the tracker: bad line 3");
        assert!(!o.note("reading the tracker", "bad line 3"));
        // The same cause met by another call: not news.
        assert!(!o.note("claiming bd-1", "bad line 3"));
        assert!(o.note("claiming bd-1", "bad line 4"));
        assert_eq!(o.error, "claiming bd-1: bad line 4");
        assert!(!o.note("reading the tracker", "bad line 4"));
        // A cause that merely ends like the last one is a new one.
        assert!(o.note("closing bd-2", "line 4"));
    }
}
