//! One queue for the recognition passes of every call on a node.
//!
//! A Whisper pass keeps its threads busy until it ends, and whisper.cpp's threads spin while they wait
//! for each other: two passes on cores meant for one each run far more than twice as slow. Without an
//! order across calls, a final transcript that a caller is waiting for shares the cores with other
//! callers' partials, which nobody waits for. The gate lets at most `slots` passes run at once, serves
//! passes someone waits for (finals, and the pass started when a caller pauses) in the order they asked,
//! and runs a partial only on a slot nothing else wants.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Admits recognition passes; shared by every utterance of one recogniser.
#[derive(Debug)]
pub struct PassGate {
    slots: usize,
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    running: usize,
    /// Tickets of urgent passes waiting, oldest first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// A running pass's slot, given back when dropped.
#[derive(Debug)]
pub struct PassPermit {
    gate: Arc<PassGate>,
}

impl PassGate {
    /// A gate for `slots` passes at once (at least one).
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: slots.max(1),
            state: Mutex::new(GateState::default()),
            freed: Condvar::new(),
        })
    }

    /// How many passes fit on `cores` when each takes `threads_per_pass` of them.
    pub fn slots_for(cores: usize, threads_per_pass: usize) -> usize {
        (cores / threads_per_pass.max(1)).max(1)
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // A panic while holding the lock leaves only counters behind, still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a partial pass, only when one is free and no urgent pass is waiting for it; `None`
    /// means skip this partial (the next one covers more audio anyway).
    pub fn try_partial(self: &Arc<Self>) -> Option<PassPermit> {
        let mut state = self.lock();
        if state.running < self.slots && state.waiting.is_empty() {
            state.running += 1;
            Some(PassPermit { gate: self.clone() })
        } else {
            None
        }
    }

    /// A slot for a pass a caller is waiting for. Blocks until the urgent passes that asked before have
    /// started and a slot is free (call it off an async runtime's worker threads).
    pub fn urgent(self: &Arc<Self>) -> PassPermit {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back(ticket);
        while state.running >= self.slots || state.waiting.front() != Some(&ticket) {
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting.pop_front();
        state.running += 1;
        drop(state);
        // The next ticket may fit too when there are several slots.
        self.freed.notify_all();
        PassPermit { gate: self.clone() }
    }

    /// Passes running now.
    pub fn running(&self) -> usize {
        self.lock().running
    }
}

impl Drop for PassPermit {
    fn drop(&mut self) {
        self.gate.lock().running -= 1;
        self.gate.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    #[test]
    fn partials_run_only_on_free_slots_nobody_waits_for() {
        let gate = PassGate::new(1);
        let partial = gate.try_partial().expect("an idle gate admits a partial");
        assert!(gate.try_partial().is_none(), "the only slot is taken");
        let (started, urgent_started) = mpsc::channel();
        let waiter = {
            let gate = gate.clone();
            thread::spawn(move || {
                let permit = gate.urgent();
                started.send(()).unwrap();
                thread::sleep(Duration::from_millis(50));
                drop(permit);
            })
        };
        thread::sleep(Duration::from_millis(30));
        assert!(
            urgent_started.try_recv().is_err(),
            "the partial holds the slot"
        );
        drop(partial);
        // The slot went to the urgent pass; while it waited or runs, no partial starts.
        assert!(gate.try_partial().is_none());
        urgent_started
            .recv_timeout(Duration::from_secs(5))
            .expect("the urgent pass starts when the partial ends");
        waiter.join().unwrap();
        assert_eq!(gate.running(), 0);
        assert!(gate.try_partial().is_some());
    }

    #[test]
    fn urgent_passes_start_in_the_order_they_asked() {
        let gate = PassGate::new(1);
        let holder = gate.urgent();
        let (order, started) = mpsc::channel();
        let mut waiters = Vec::new();
        for caller in 0..4 {
            let shared = gate.clone();
            let order = order.clone();
            waiters.push(thread::spawn(move || {
                let _permit = shared.urgent();
                order.send(caller).unwrap();
                thread::sleep(Duration::from_millis(5));
            }));
            // Each asks only once the one before is queued.
            while gate.lock().waiting.len() < caller + 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        drop(holder);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        let served: Vec<usize> = started.try_iter().collect();
        assert_eq!(served, vec![0, 1, 2, 3]);
    }

    #[test]
    fn several_slots_run_several_passes() {
        assert_eq!(PassGate::slots_for(2, 2), 1);
        assert_eq!(PassGate::slots_for(8, 2), 4);
        assert_eq!(PassGate::slots_for(1, 4), 1);
        let gate = PassGate::new(PassGate::slots_for(4, 2));
        let a = gate.urgent();
        let b = gate.urgent();
        assert_eq!(gate.running(), 2);
        assert!(gate.try_partial().is_none());
        drop((a, b));
        assert_eq!(gate.running(), 0);
    }
}
