//! What the agent does to a phone call besides talking to it: ring a number, and end a call (hang up, or
//! hand the caller to TRANSFER_TARGET). One implementation per phone network (Twilio's REST API,
//! Asterisk's ARI, SIP's INVITE, REFER and BYE); the API and the transports use only these traits, and the
//! rule that picks a transfer or a hang-up lives here, once.
//!
//! Key presses reach a call through its own channel (`Carried::accept_key_presses`), which each line
//! serves its own way (RFC 4733 packets on the SIP leg, channel DTMF through ARI), from its own loop.

use std::future::Future;
use std::pin::Pin;

use switchboard_core::CallId;
use switchboard_core::config::TelephonyProvider;
use switchboard_session::EndReason;

use crate::{ApiError, AppState};

/// What placing a call returns: the network's own id of the call (Twilio's CallSid, Asterisk's channel
/// id, the SIP URI rung).
pub(crate) type Placing<'a> = Pin<Box<dyn Future<Output = Result<String, ApiError>> + Send + 'a>>;

/// A phone network that rings numbers for the agent (TELEPHONY_PROVIDER).
pub(crate) trait PlaceCalls: Send + Sync {
    /// Rings `to` for the call record `call_id`, just created (`from`: the caller id asked for, if any).
    /// A network that refuses ends the record and says why.
    fn place<'a>(
        &'a self,
        state: &'a AppState,
        call_id: CallId,
        to: &'a str,
        from: Option<&'a str>,
    ) -> Placing<'a>;
}

/// The network this node's outbound calls go through, `None` when it rings none itself (no provider, or
/// Asterisk without ARI): the API's client then connects the call's audio over `/ws/audio`.
pub(crate) fn network(state: &AppState) -> Option<&'static dyn PlaceCalls> {
    match state.config.telephony.provider {
        TelephonyProvider::Twilio => Some(&crate::twilio::Network),
        TelephonyProvider::Asterisk if state.ari.is_some() => Some(&crate::ari::Network),
        TelephonyProvider::Sip => Some(&crate::sip::Network),
        _ => None,
    }
}

/// A connected call's line on its phone network.
pub(crate) trait CallControl: Sized + Send {
    /// Hands the caller to `target` (TRANSFER_TARGET). When the network refuses, the line comes back with
    /// its reason, to be hung up.
    fn transfer(self, target: &str) -> impl Future<Output = Result<(), (Self, String)>> + Send;

    /// Hangs up.
    fn hang_up(self) -> impl Future<Output = ()> + Send;
}

/// Ends call `call_id` on its line for `reason`: a call whose caller asked for a person is transferred
/// to `target`; any other end, a transfer with no target, or one the network refused, hangs up.
pub(crate) async fn end<L: CallControl>(
    line: L,
    call_id: CallId,
    reason: &EndReason,
    target: Option<&str>,
) {
    let line = match (reason, target) {
        (EndReason::Transferred(_), Some(target)) => match line.transfer(target).await {
            Ok(()) => {
                tracing::info!(%call_id, "call transferred");
                return;
            }
            Err((line, why)) => {
                metrics::counter!("switchboard_errors_total", "kind" => "transfer").increment(1);
                tracing::error!(%call_id, error = %why, "the transfer failed; the call ends");
                line
            }
        },
        (EndReason::Transferred(_), None) => {
            tracing::warn!(%call_id, "the caller asked for a person but TRANSFER_TARGET is not set; the call ends");
            line
        }
        _ => line,
    };
    line.hang_up().await;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A line that records what was done to it, and refuses transfers when told to.
    struct Recorded {
        done: Arc<Mutex<Vec<String>>>,
        refuse: bool,
    }

    impl CallControl for Recorded {
        async fn transfer(self, target: &str) -> Result<(), (Self, String)> {
            self.done.lock().unwrap().push(format!("transfer {target}"));
            if self.refuse {
                Err((self, "busy".into()))
            } else {
                Ok(())
            }
        }

        async fn hang_up(self) {
            self.done.lock().unwrap().push("hang up".into());
        }
    }

    async fn ended(reason: EndReason, target: Option<&str>, refuse: bool) -> Vec<String> {
        let done = Arc::new(Mutex::new(Vec::new()));
        let line = Recorded {
            done: done.clone(),
            refuse,
        };
        end(line, CallId::new(), &reason, target).await;
        Arc::try_unwrap(done).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn a_transfer_goes_to_the_target_and_anything_else_hangs_up() {
        let person = || EndReason::Transferred("asked for a person".into());
        assert_eq!(
            ended(person(), Some("+14155550111"), false).await,
            ["transfer +14155550111"]
        );
        assert_eq!(
            ended(person(), Some("+14155550111"), true).await,
            ["transfer +14155550111", "hang up"],
            "a refused transfer still ends the call"
        );
        assert_eq!(ended(person(), None, false).await, ["hang up"]);
        for reason in [
            EndReason::AgentEnded("goodbye".into()),
            EndReason::NoResponse,
            EndReason::DurationLimit,
            EndReason::EndedByApi,
        ] {
            assert_eq!(
                ended(reason, Some("+14155550111"), false).await,
                ["hang up"]
            );
        }
    }
}
