//! The calls this node carries now: a slot per connected call (MAX_CONCURRENT_CALLS), the token that ends
//! it from the API, and a fan-out of its events for live viewers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use switchboard_core::CallId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Events of one call kept for slow live viewers before they miss some.
const EVENT_BACKLOG: usize = 256;

/// A connected call.
#[derive(Debug, Clone)]
pub struct LiveCall {
    /// Cancelling it ends the call politely.
    pub hangup: CancellationToken,
    /// The call's events as JSON text.
    pub events: broadcast::Sender<Arc<str>>,
    /// Where key presses to send to the far end go, set by a transport that can send them (SIP).
    pub keys: Arc<OnceLock<mpsc::Sender<String>>>,
}

/// Why a call could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Every slot is taken.
    #[error("this node carries its maximum of {0} calls (MAX_CONCURRENT_CALLS); try again later")]
    Full(u32),
    /// The call is already connected.
    #[error("call {0} already has its audio connected")]
    AlreadyConnected(CallId),
}

/// The live calls of this process.
#[derive(Debug, Clone)]
pub struct CallRegistry {
    calls: Arc<Mutex<HashMap<CallId, LiveCall>>>,
    slots: Arc<Semaphore>,
    max: u32,
}

/// Holds a call's slot; dropping it frees the slot and forgets the call.
#[derive(Debug)]
pub struct Registration {
    registry: CallRegistry,
    id: CallId,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl CallRegistry {
    /// A registry of at most `max` calls.
    pub fn new(max: u32) -> Self {
        crate::metrics::CALLS_MAX.store(max, std::sync::atomic::Ordering::Relaxed);
        Self {
            calls: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Takes a slot for `id`.
    pub fn register(&self, id: CallId) -> Result<(Registration, LiveCall), RegisterError> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| RegisterError::Full(self.max))?;
        let mut calls = self.lock();
        if calls.contains_key(&id) {
            return Err(RegisterError::AlreadyConnected(id));
        }
        let live = LiveCall {
            hangup: CancellationToken::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            keys: Arc::new(OnceLock::new()),
        };
        calls.insert(id, live.clone());
        drop(calls);
        Ok((
            Registration {
                registry: self.clone(),
                id,
                _slot: slot,
            },
            live,
        ))
    }

    /// The live call `id`, if this node carries it.
    pub fn get(&self, id: CallId) -> Option<LiveCall> {
        self.lock().get(&id).cloned()
    }

    /// Whether every slot is taken (the next call would be refused).
    pub fn is_full(&self) -> bool {
        self.slots.available_permits() == 0
    }

    /// Calls carried now.
    pub fn active(&self) -> usize {
        self.lock().len()
    }

    /// Ends every call (shutdown).
    pub fn hang_up_all(&self) {
        for call in self.lock().values() {
            call.hangup.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CallId, LiveCall>> {
        // Inserts and removes are single operations: a panic elsewhere cannot leave the map half-changed.
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_when_a_call_ends() {
        let registry = CallRegistry::new(1);
        let a = CallId::new();
        let (held, _) = registry.register(a).unwrap();
        assert_eq!(
            registry.register(CallId::new()).unwrap_err(),
            RegisterError::Full(1)
        );
        assert!(registry.get(a).is_some());
        drop(held);
        assert!(registry.get(a).is_none());
        assert!(registry.register(CallId::new()).is_ok());
    }

    #[test]
    fn a_call_cannot_connect_twice() {
        let registry = CallRegistry::new(4);
        let a = CallId::new();
        let _held = registry.register(a).unwrap();
        assert_eq!(
            registry.register(a).unwrap_err(),
            RegisterError::AlreadyConnected(a)
        );
        assert_eq!(registry.active(), 1);
    }
}
