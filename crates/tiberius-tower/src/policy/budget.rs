//! The retry budget shared by every clone of the service.
//!
//! Backoff bounds one connect; the budget bounds all of them together. When
//! a server is down, a pool of fifty connections that each retry four times
//! would multiply the load by five exactly when the server can least take
//! it, and a fleet of such pools recovering from a failover would hit the
//! returning server all at once.
//!
//! So retries are paid for by successes: every connect that logs in deposits
//! `ratio` retries (one by default), and a small steady allowance refills at
//! jittered intervals (one retry every five seconds on average by default).
//! While the server answers, retries are plentiful; while it refuses
//! everything, a process retries about once per refill interval, whatever the
//! size of its pool; and when it comes back, each login it accepts pays for
//! one more attempt, so a process's retry rate follows what the server
//! absorbs instead of what the backoff schedule would send. A retry that
//! finds the budget empty waits for a deposit or a refill, up to the
//! connect's deadline, rather than failing a connect the server may take
//! a second later (`benches/benches/storm.rs` and `docs/performance.md` have
//! the simulation behind these numbers).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Default retries deposited by each connect that logs in: 1.
///
/// One retry per accepted login is the largest deposit that cannot grow a
/// storm: the retries a process may make are at most the logins the server
/// accepted plus the steady allowance. Below one, a recovering fleet's retry
/// rate decays instead of following the server back up.
pub(crate) const DEFAULT_RETRY_RATIO: f32 = 1.0;

/// Default steady allowance: 0.2 retries per second, one every five seconds
/// on average, whether or not anything succeeds.
///
/// This is how often a process whose every attempt fails probes the server
/// (after its saved retries are spent): often enough that a recovered
/// server is noticed within seconds, rare enough that a thousand processes
/// probing a server that is back add 200 attempts per second, a tenth of a
/// server absorbing 2,000 logins per second.
pub(crate) const DEFAULT_REFILL_PER_SEC: f32 = 0.2;

/// Default cap on saved-up retries: 10, and a budget starts full.
///
/// Enough for a burst of resets in a healthy pool to be retried at once;
/// small enough that what a process saved before an outage cannot become a
/// wave when the server returns.
pub(crate) const DEFAULT_MAX_BALANCE: u32 = 10;

// Tokens are counted in millionths, so fractional deposits and refill rates
// stay exact.
const SCALE: i64 = 1_000_000;

/// A token bucket of retries: every connect that logs in deposits
/// [`ratio`](Self::new) retries, every retry withdraws one whole token, and a
/// steady allowance refills one token at a time at jittered intervals
/// (uniform between half and one and a half of the mean interval, so that
/// processes that emptied their budgets in the same outage do not probe the
/// server in the same instant). A retry that finds it empty waits for a
/// token until its connect's deadline. Share it by wrapping it in an `Arc`
/// (the policy does).
///
/// Time is read from tokio's clock, so the refill can be tested on paused
/// time.
///
/// Upgrades and redirects do not withdraw: they are bounded by the length of
/// the encryption ladder and by the redirect limit, and each is a different
/// request, not a repetition of a failed one.
#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    /// Mean time between two steady tokens; `None` when nothing refills.
    refill_every: Option<Duration>,
    max_balance: i64,
    state: Mutex<BudgetState>,
    /// Wakes a waiting retry when a deposit makes a token available.
    freed: Notify,
}

#[derive(Debug)]
struct BudgetState {
    balance: i64,
    /// When the next steady token arrives.
    next_refill: Instant,
}

impl RetryBudget {
    /// A budget where each connect that logs in deposits `ratio` retries
    /// (clamped to 0..=1000), `refill_per_sec` retries refill per second on
    /// average (clamped to 0..=1000; 0 turns the steady allowance off), and
    /// at most `max_balance` retries can be saved. It starts full. When
    /// deposits or refills are on, it can hold at least one retry whatever
    /// `max_balance` says, so that a deposit can always pay a waiting retry.
    ///
    /// A fleet whose size and server are known can give each process its
    /// share of what the server absorbs instead, with logins paying for
    /// nothing (`docs/guide.md` says when that is better than the default,
    /// and what a wrong count costs):
    ///
    /// ```
    /// use tiberius_tower::{ConnectPolicy, RetryBudget};
    ///
    /// let server_logins_per_sec = 2_000.0; // what the server absorbs
    /// let processes = 1_000.0; // every process that connects to it
    /// let share = RetryBudget::new(0.0, server_logins_per_sec / processes, 2);
    /// let policy = ConnectPolicy::new().budget(share);
    /// # let _ = policy;
    /// ```
    pub fn new(ratio: f32, refill_per_sec: f32, max_balance: u32) -> Self {
        let clamp = |value: f32| {
            if value.is_finite() {
                value.clamp(0.0, 1000.0)
            } else {
                0.0
            }
        };
        let refill_per_sec = clamp(refill_per_sec);
        let deposit = (f64::from(clamp(ratio)) * SCALE as f64) as i64;
        let refill_every = (refill_per_sec > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / f64::from(refill_per_sec)));
        let start = i64::from(max_balance) * SCALE;
        let max_balance = if deposit > 0 || refill_every.is_some() {
            start.max(SCALE)
        } else {
            start
        };
        RetryBudget {
            deposit,
            refill_every,
            max_balance,
            state: Mutex::new(BudgetState {
                balance: start,
                next_refill: after_interval(refill_every, Instant::now()),
            }),
            freed: Notify::new(),
        }
    }

    /// A budget that never allows a retry (useful to turn retries off while
    /// keeping upgrades and redirects).
    pub fn none() -> Self {
        RetryBudget::new(0.0, 0.0, 0)
    }

    /// A fixed number of retries with no deposit and no refill: tests and
    /// batch jobs that want an exact bound. A retry that finds it empty stops
    /// at once (nothing could refill it).
    pub fn fixed(retries: u32) -> Self {
        RetryBudget::new(0.0, 0.0, retries)
    }

    /// Records a connect that logged in, and wakes a waiting retry if that
    /// completed a token.
    pub(crate) fn deposit(&self) {
        if self.deposit == 0 {
            return;
        }
        let available = {
            let mut state = self.lock();
            self.refill(&mut state);
            state.balance = (state.balance + self.deposit).min(self.max_balance);
            state.balance >= SCALE
        };
        if available {
            self.freed.notify_one();
        }
    }

    /// Takes one retry if one is available now.
    pub(crate) fn withdraw(&self) -> bool {
        self.try_withdraw().is_ok()
    }

    /// True when waiting can ever produce a token (a deposit or a refill).
    pub(crate) fn can_refill(&self) -> bool {
        self.deposit > 0 || self.refill_every.is_some()
    }

    /// Waits for one retry until `until`: true when one was taken.
    ///
    /// Woken by a deposit (one waiter per deposit) or by the next steady
    /// token, whichever comes first.
    pub(crate) async fn acquire(&self, until: Instant) -> bool {
        loop {
            // Registered before looking, so a deposit between the look and
            // the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let next_refill = match self.try_withdraw() {
                Ok(()) => return true,
                Err(next_refill) => next_refill,
            };
            if Instant::now() >= until {
                return false;
            }
            let wake = next_refill.map_or(until, |at| at.min(until));
            tokio::select! {
                () = &mut freed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Whole retries available now.
    pub fn available(&self) -> u32 {
        let mut state = self.lock();
        self.refill(&mut state);
        u32::try_from(state.balance / SCALE).unwrap_or(u32::MAX)
    }

    /// Takes one token, or says when the next steady one arrives.
    fn try_withdraw(&self) -> Result<(), Option<Instant>> {
        let mut state = self.lock();
        self.refill(&mut state);
        if state.balance >= SCALE {
            state.balance -= SCALE;
            Ok(())
        } else {
            Err(self.refill_every.map(|_| state.next_refill))
        }
    }

    fn refill(&self, state: &mut BudgetState) {
        if self.refill_every.is_none() {
            return;
        }
        let now = Instant::now();
        while state.next_refill <= now {
            if state.balance >= self.max_balance {
                // Full: nothing to add until something is spent, and a long
                // quiet period must not be walked one interval at a time.
                state.next_refill = after_interval(self.refill_every, now);
                break;
            }
            state.balance = (state.balance + SCALE).min(self.max_balance);
            state.next_refill = after_interval(self.refill_every, state.next_refill);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // Nothing panics while holding this lock; if something ever did, the
        // numbers are still valid, so keep going rather than propagate.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The arrival of the steady token after one at `from`: the mean interval
/// `every` times a uniform draw in [0.5, 1.5) (`from` itself when nothing
/// refills).
fn after_interval(every: Option<Duration>, from: Instant) -> Instant {
    let Some(every) = every else {
        return from;
    };
    let interval = every.mul_f64(0.5 + fastrand::f64());
    from.checked_add(interval.max(Duration::from_micros(1)))
        .unwrap_or(from)
}

impl Default for RetryBudget {
    /// One retry deposited per connect that logs in, 0.2 retries per second
    /// of steady allowance, at most 10 saved, starting full (the reasons are
    /// on the constants in the source and in `docs/guide.md`).
    fn default() -> Self {
        RetryBudget::new(
            DEFAULT_RETRY_RATIO,
            DEFAULT_REFILL_PER_SEC,
            DEFAULT_MAX_BALANCE,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_budget_allows_exactly_n() {
        let b = RetryBudget::fixed(3);
        assert!(!b.can_refill());
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
        b.deposit();
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_accumulate_in_fractions() {
        let b = RetryBudget::new(0.2, 0.0, 10);
        for _ in 0..10 {
            assert!(b.withdraw(), "starts full");
        }
        assert!(!b.withdraw());
        for _ in 0..4 {
            b.deposit();
        }
        assert!(!b.withdraw(), "0.8 of a retry is not one");
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn balance_is_capped() {
        let b = RetryBudget::new(1.0, 0.0, 2);
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(b.available(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn none_never_allows() {
        let b = RetryBudget::none();
        b.deposit();
        assert!(!b.withdraw());
        assert!(!b.can_refill());
        let until = Instant::now() + Duration::from_secs(1);
        assert!(!b.acquire(until).await, "nothing can refill it");
    }

    #[tokio::test(start_paused = true)]
    async fn steady_tokens_arrive_one_at_a_time_at_jittered_intervals() {
        // 10 per second: each token 50 to 150 ms after the one before.
        let b = RetryBudget::new(0.0, 10.0, 5);
        for _ in 0..5 {
            assert!(b.withdraw());
        }
        let mut previous = Instant::now();
        let mut gaps = Vec::new();
        for _ in 0..200 {
            let mut waited = Duration::ZERO;
            while !b.withdraw() {
                tokio::time::advance(Duration::from_millis(1)).await;
                waited += Duration::from_millis(1);
                assert!(
                    waited <= Duration::from_millis(200),
                    "a token within 150 ms"
                );
            }
            let now = Instant::now();
            gaps.push(now - previous);
            previous = now;
        }
        let min = gaps.iter().min().copied().unwrap_or_default();
        let max = gaps.iter().max().copied().unwrap_or_default();
        let mean = gaps.iter().sum::<Duration>() / 200;
        assert!(min >= Duration::from_millis(45), "shortest gap {min:?}");
        assert!(max <= Duration::from_millis(151), "longest gap {max:?}");
        assert!(
            max - min >= Duration::from_millis(50),
            "the gaps vary: {min:?}..{max:?}"
        );
        assert!(
            (Duration::from_millis(85)..=Duration::from_millis(115)).contains(&mean),
            "mean gap {mean:?}"
        );
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(b.available(), 5, "an hour of quiet banks at most the cap");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_retry_is_woken_by_a_deposit() {
        let b = std::sync::Arc::new(RetryBudget::new(1.0, 0.0, 1));
        assert!(b.withdraw());
        let waiter = {
            let b = std::sync::Arc::clone(&b);
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(30);
                let granted = b.acquire(until).await;
                (granted, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let deposited_at = Instant::now();
        b.deposit();
        let (granted, at) = waiter.await.expect("no panic");
        assert!(granted);
        assert_eq!(at, deposited_at, "taken when the deposit arrived");
        assert_eq!(b.available(), 0, "the deposit was spent by the waiter");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_retry_takes_the_next_steady_token() {
        // 1 per second: the next token 0.5 to 1.5 s after the budget emptied.
        let b = RetryBudget::new(0.0, 1.0, 1);
        let start = Instant::now();
        assert!(b.withdraw());
        assert!(b.acquire(start + Duration::from_secs(30)).await);
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(500)..=Duration::from_millis(1500)).contains(&waited),
            "waited {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_retry_gives_up_at_its_deadline() {
        // One token every 100 s on average: none before the 2 s deadline.
        let b = RetryBudget::new(1.0, 0.01, 1);
        let start = Instant::now();
        assert!(b.withdraw());
        assert!(!b.acquire(start + Duration::from_secs(2)).await);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "no later than the deadline"
        );
    }

    #[test]
    fn default_starts_full() {
        assert_eq!(RetryBudget::default().available(), 10);
    }
}
