//! The engine's background threads, owned in one place so that shutdown can stop them.
//!
//! Every thread the engine starts after construction (tasks, schedulers, start-up work, catalog reloads,
//! staleness checks) is spawned through [`Background::spawn`] and its handle kept. [`Background::stop`] raises
//! the stop flag and wakes every sleeper; long work polls [`Background::is_stopping`] at its checkpoints.
//! [`Background::join`] then waits for the threads until a deadline. Once stopping, nothing new is spawned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A cheap handle on the engine's thread set; clones share it.
#[derive(Clone, Default)]
pub struct Background {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Sleepers wait on this; `stop` notifies it.
    wake: Condvar,
    sleep_lock: Mutex<()>,
}

impl Background {
    /// Runs `work` on a new named thread, unless the engine is stopping (then returns false and drops it).
    pub fn spawn(&self, name: &str, work: impl FnOnce() + Send + 'static) -> bool {
        let mut threads = self.shared.threads.lock().expect("background threads poisoned");
        if self.is_stopping() {
            tracing::debug!(thread = name, "not started: the engine is stopping");
            return false;
        }
        threads.retain(|thread| !thread.is_finished());
        match std::thread::Builder::new().name(name.to_string()).spawn(work) {
            Ok(handle) => {
                threads.push(handle);
                true
            }
            Err(error) => {
                tracing::error!(thread = name, %error, "cannot start a background thread");
                false
            }
        }
    }

    /// Whether shutdown has begun: long work should stop at its next checkpoint.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Sleeps for `duration` or until shutdown begins; returns false when stopping.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = self.shared.sleep_lock.lock().expect("background sleep poisoned");
        while !self.is_stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = self.shared.wake.wait_timeout(guard, left).expect("background sleep poisoned").0;
        }
        false
    }

    /// Begins shutdown: no new threads, sleepers wake, long work stops at its next checkpoint.
    pub fn stop(&self) {
        let _guard = self.shared.sleep_lock.lock().expect("background sleep poisoned");
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_all();
    }

    /// Waits until every thread has finished or `deadline` passed; returns how many are still running.
    pub fn join(&self, deadline: Instant) -> usize {
        loop {
            let mut threads = self.shared.threads.lock().expect("background threads poisoned");
            let (finished, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|thread| thread.is_finished());
            *threads = running;
            let left = threads.len();
            drop(threads);
            for thread in finished {
                if thread.join().is_err() {
                    tracing::warn!("a background thread panicked");
                }
            }
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_sleepers_and_join_waits_for_them() {
        let background = Background::default();
        let sleeper = background.clone();
        assert!(background.spawn("sleeper", move || {
            assert!(!sleeper.sleep(Duration::from_secs(60)), "woken by stop");
        }));
        let clock = Instant::now();
        background.stop();
        assert_eq!(background.join(Instant::now() + Duration::from_secs(10)), 0);
        assert!(clock.elapsed() < Duration::from_secs(5));
        assert!(!background.spawn("late", || {}), "nothing starts once stopping");
        assert!(!background.sleep(Duration::from_secs(60)));
    }

    #[test]
    fn join_gives_up_at_the_deadline() {
        let background = Background::default();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        background.spawn("stuck", move || {
            let _ = wait.recv();
        });
        background.stop();
        assert_eq!(background.join(Instant::now() + Duration::from_millis(50)), 1);
        release.send(()).unwrap();
        assert_eq!(background.join(Instant::now() + Duration::from_secs(10)), 0);
    }
}
