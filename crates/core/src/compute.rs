//! One queue for the model work of every call on a node: recognition passes (whisper.cpp) and the
//! language model's steps (llama.cpp).
//!
//! Both are ggml: a computation keeps its threads busy until it ends, and ggml's threads spin at a
//! barrier while they wait for each other. Two computations on cores meant for one each run far more than
//! twice as slow: measured on 2 cores with one call, a caller's final transcript took 8.8 s instead of
//! 0.2 s while the model answered beside it, 80 % of the samples spinning in `ggml_barrier`. The gate lets
//! at most `slots` computations run at once. Work someone waits for queues, served by [`Priority`], then
//! in the order asked; a recognition pass no longer wanted (the caller went on speaking, or a newer pass
//! covers more) leaves the queue without running. The model queues for each step (a piece of the prompt,
//! one generated token), so a transcript the caller waits for waits at most one step. A partial
//! transcript runs only on a slot nothing in the queue wants, and with preemption on it is stopped as soon
//! as anything else is queued (its result would be stale by then anyway), so that work does not wait out
//! the partial's remaining time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Admits model computations; one per node, shared by the recogniser and the language model.
#[derive(Debug)]
pub struct ComputeGate {
    slots: usize,
    /// Whether queuing a pass stops the partials running.
    preempt: bool,
    state: Mutex<GateState>,
    freed: Condvar,
}

/// How much a queued computation is waited for; a lower level starts first, then the older ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The end of the caller's turn is confirmed and the caller waits for this recognition pass.
    Final,
    /// The caller went quiet: this pass is likely the final, or becomes a partial if they go on.
    Paused,
    /// A step of the model answering a caller (or reading their words).
    Answer,
    /// A step of work no caller waits for (a summary after the call).
    Background,
}

#[derive(Debug, Default)]
struct GateState {
    running: usize,
    /// Queued passes as (priority, ticket id); ids grow in order of asking.
    waiting: Vec<(Priority, u64)>,
    next_id: u64,
    /// The stop flags of the partials running now.
    partials: Vec<Arc<AtomicBool>>,
}

impl GateState {
    fn next_in_line(&self) -> Option<u64> {
        self.waiting.iter().min().map(|&(_, id)| id)
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.waiting.iter().position(|&(_, queued)| queued == id)
    }
}

/// A running pass's slot, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<ComputeGate>,
    /// Set when a partial should stop early for a pass someone waits for; `None` for those passes.
    stop: Option<Arc<AtomicBool>>,
}

impl Permit {
    /// The flag a partial's recogniser polls to stop early; `None` for a pass someone waits for.
    pub fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        self.stop.clone()
    }
}

/// A place in the queue for one pass. Whoever holds a clone may wait for it, raise it to
/// [`Priority::Final`] or withdraw it while it has not started.
#[derive(Debug, Clone)]
pub struct Ticket {
    gate: Arc<ComputeGate>,
    id: u64,
}

impl ComputeGate {
    /// A gate for `slots` passes at once (at least one); with `preempt`, queuing a pass stops the
    /// partials running.
    pub fn new(slots: usize, preempt: bool) -> Arc<Self> {
        Arc::new(Self {
            slots: slots.max(1),
            preempt,
            state: Mutex::new(GateState::default()),
            freed: Condvar::new(),
        })
    }

    /// How many computations fit on `cores` when each takes `threads_per_pass` of them.
    pub fn slots_for(cores: usize, threads_per_pass: usize) -> usize {
        (cores / threads_per_pass.max(1)).max(1)
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // A panic while holding the lock leaves only counters behind, still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a partial pass, only when one is free and no queued pass wants it; `None` means skip
    /// this partial (the next one covers more audio anyway).
    pub fn try_partial(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.lock();
        if state.running < self.slots && state.waiting.is_empty() {
            state.running += 1;
            let stop = Arc::new(AtomicBool::new(false));
            state.partials.push(stop.clone());
            Some(Permit {
                gate: self.clone(),
                stop: Some(stop),
            })
        } else {
            None
        }
    }

    /// Queues a pass; it starts when [`Ticket::wait`] finds it first in line and a slot free.
    pub fn enqueue(self: &Arc<Self>, priority: Priority) -> Ticket {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push((priority, id));
        if self.preempt {
            for partial in &state.partials {
                partial.store(true, Ordering::Relaxed);
            }
        }
        Ticket {
            gate: self.clone(),
            id,
        }
    }

    /// A slot for a pass the caller waits for now, after the passes before it in line. Blocks (call it
    /// off an async runtime's worker threads).
    pub fn urgent(self: &Arc<Self>) -> Permit {
        self.acquire(Priority::Final)
    }

    /// A slot for one computation at `priority`, after the work before it in line. Blocks (call it off
    /// an async runtime's worker threads).
    pub fn acquire(self: &Arc<Self>, priority: Priority) -> Permit {
        // Nobody else holds this ticket, so nobody can withdraw it.
        let ticket = self.enqueue(priority);
        ticket.wait().unwrap_or_else(|| self.acquire(priority))
    }

    /// Passes running now.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// Passes queued now.
    pub fn queued(&self) -> usize {
        self.lock().waiting.len()
    }
}

impl Ticket {
    /// Blocks until this pass may start; `None` when it was withdrawn first.
    pub fn wait(&self) -> Option<Permit> {
        let mut state = self.gate.lock();
        loop {
            // Gone from the queue without starting: withdrawn.
            let at = state.position(self.id)?;
            if state.running < self.gate.slots && state.next_in_line() == Some(self.id) {
                state.waiting.swap_remove(at);
                state.running += 1;
                drop(state);
                // With several slots the next in line may fit too.
                self.gate.freed.notify_all();
                return Some(Permit {
                    gate: self.gate.clone(),
                    stop: None,
                });
            }
            state = self
                .gate
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Takes the pass out of the queue if it has not started; true if it was still waiting.
    pub fn withdraw(&self) -> bool {
        let mut state = self.gate.lock();
        let Some(at) = state.position(self.id) else {
            return false;
        };
        state.waiting.swap_remove(at);
        drop(state);
        self.gate.freed.notify_all();
        true
    }

    /// The caller now waits for this pass: it goes before the passes of callers who only paused.
    pub fn promote(&self) {
        let mut state = self.gate.lock();
        if let Some(at) = state.position(self.id) {
            state.waiting[at].0 = Priority::Final;
            drop(state);
            self.gate.freed.notify_all();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.running -= 1;
        if let Some(stop) = &self.stop {
            state.partials.retain(|running| !Arc::ptr_eq(running, stop));
        }
        drop(state);
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
        let gate = ComputeGate::new(1, false);
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
        let gate = ComputeGate::new(1, false);
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
            while gate.queued() < caller + 1 {
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

    /// Waits on each ticket on a thread of its own, frees the slot `holder` takes, and returns the names
    /// in the order their work started. Whoever is waiting, only the first in line starts.
    fn served_in_order(holder: Permit, queued: Vec<(&'static str, Ticket)>) -> Vec<&'static str> {
        let (order, served) = mpsc::channel();
        let waiters: Vec<_> = queued
            .into_iter()
            .map(|(name, ticket)| {
                let order = order.clone();
                thread::spawn(move || {
                    let _permit = ticket.wait().expect("not withdrawn");
                    order.send(name).unwrap();
                })
            })
            .collect();
        drop(holder);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        served.try_iter().collect()
    }

    #[test]
    fn a_confirmed_final_goes_before_passes_started_at_pauses() {
        let gate = ComputeGate::new(1, false);
        let holder = gate.urgent();
        let paused = gate.enqueue(Priority::Paused);
        let promoted = gate.enqueue(Priority::Paused);
        let final_pass = gate.enqueue(Priority::Final);
        promoted.promote();
        let served = served_in_order(
            holder,
            vec![
                ("paused", paused),
                ("promoted", promoted),
                ("final", final_pass),
            ],
        );
        assert_eq!(served, vec!["promoted", "final", "paused"]);
    }

    #[test]
    fn transcripts_waited_for_go_before_the_models_steps_and_background_work_goes_last() {
        let gate = ComputeGate::new(1, false);
        let holder = gate.urgent();
        let queued = [
            ("background", gate.enqueue(Priority::Background)),
            ("answer", gate.enqueue(Priority::Answer)),
            ("paused", gate.enqueue(Priority::Paused)),
            ("final", gate.enqueue(Priority::Final)),
        ];
        let served = served_in_order(holder, queued.into());
        assert_eq!(served, vec!["final", "paused", "answer", "background"]);
        // A step asked for while a partial runs stops it, as a pass does.
        let gate = ComputeGate::new(1, true);
        let partial = gate.try_partial().unwrap();
        let stop = partial.stop_flag().unwrap();
        let step = {
            let gate = gate.clone();
            thread::spawn(move || drop(gate.acquire(Priority::Answer)))
        };
        while gate.queued() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(stop.load(Ordering::Relaxed));
        drop(partial);
        step.join().unwrap();
        assert_eq!(gate.running(), 0);
    }

    #[test]
    fn a_withdrawn_pass_never_starts_and_frees_its_place() {
        let gate = ComputeGate::new(1, false);
        let holder = gate.urgent();
        let stale = gate.enqueue(Priority::Paused);
        let waiter = {
            let stale = stale.clone();
            thread::spawn(move || stale.wait().is_none())
        };
        thread::sleep(Duration::from_millis(20));
        assert!(stale.withdraw(), "it was still waiting");
        assert!(waiter.join().unwrap(), "its waiter learns it was withdrawn");
        assert_eq!(gate.queued(), 0);
        drop(holder);
        assert!(gate.try_partial().is_some(), "nothing is left in line");
        // A pass that started cannot be withdrawn.
        let started = gate.enqueue(Priority::Paused);
        let permit = started.wait().expect("the slot is free");
        assert!(!started.withdraw());
        assert_eq!(gate.running(), 1);
        drop(permit);
        assert_eq!(gate.running(), 0);
    }

    #[test]
    fn several_slots_run_several_passes() {
        assert_eq!(ComputeGate::slots_for(2, 2), 1);
        assert_eq!(ComputeGate::slots_for(8, 2), 4);
        assert_eq!(ComputeGate::slots_for(1, 4), 1);
        let gate = ComputeGate::new(ComputeGate::slots_for(4, 2), false);
        let a = gate.urgent();
        let b = gate.urgent();
        assert_eq!(gate.running(), 2);
        assert!(gate.try_partial().is_none());
        drop((a, b));
        assert_eq!(gate.running(), 0);
    }

    #[test]
    fn a_queued_pass_stops_the_running_partials_only_when_preempting() {
        for preempt in [true, false] {
            let gate = ComputeGate::new(1, preempt);
            let partial = gate.try_partial().expect("an idle gate admits a partial");
            let stop = partial.stop_flag().expect("a partial can be stopped");
            assert!(!stop.load(Ordering::Relaxed));
            let ticket = gate.enqueue(Priority::Paused);
            assert_eq!(stop.load(Ordering::Relaxed), preempt, "preempt = {preempt}");
            drop(partial);
            let permit = ticket
                .wait()
                .expect("the queued pass starts once the slot is free");
            assert!(
                permit.stop_flag().is_none(),
                "a waited-for pass is never stopped"
            );
            assert_eq!(
                gate.lock().partials.len(),
                0,
                "the partial's flag is gone with it"
            );
        }
    }
}
