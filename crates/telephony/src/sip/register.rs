//! Registration with a PBX or a SIP provider: REGISTER our contact under an account, answer the
//! registrar's digest challenge, refresh the binding before it lapses, retry with backoff when the
//! registrar is away or refuses, and remove the binding on shutdown. ezk builds the requests (one
//! Call-ID, rising CSeq) and runs the transactions; this loop owns the timing, the failures and what the
//! rest of the node sees of it ([`RegistrationStatus`]).

use std::future::Future;
use std::time::Duration;

use ezk_sip_auth::{ClientAuthenticator, DigestAuthenticator, DigestCredentials, DigestUser};
use ezk_sip_core::Endpoint;
use ezk_sip_core::transaction::TsxResponse;
use ezk_sip_core::transport::TargetTransportInfo;
use ezk_sip_types::header::typed::{Contact, Expires};
use ezk_sip_types::print::AppendCtx;
use ezk_sip_types::uri::{NameAddr, SipUri};
use ezk_sip_types::{CodeKind, Name};
use ezk_sip_ua::register::Registration as Binding;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::agent::UserAgent;

/// The first wait after a failed REGISTER; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(5);
/// The longest wait between attempts while the registrar is away or refusing.
const RETRY_MAX: Duration = Duration::from_secs(120);
/// Digest challenges answered for one REGISTER before the credentials count as refused.
const CHALLENGES: usize = 2;
/// How long the goodbye (REGISTER with Expires: 0) may take on shutdown.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
/// The shortest binding we refresh on: below it, refreshing leaves a margin of half the binding.
const MARGIN: Duration = Duration::from_secs(10);

/// An account at a registrar.
#[derive(Clone)]
pub struct Account {
    /// The registrar (`sip:pbx.example.com` or `sip:10.0.0.5:5060`).
    pub registrar: SipUri,
    /// The account's user name: the user part of our address of record, and the digest user.
    pub username: String,
    /// The digest password; `None` for a registrar that asks for none.
    pub password: Option<String>,
    /// The binding's lifetime we ask for; the registrar may grant another.
    pub expires: Duration,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("registrar", &self.registrar.default_print_ctx().to_string())
            .field("username", &self.username)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// A digest authenticator holding this account's credentials (for REGISTER, and for INVITEs the
    /// PBX challenges).
    pub fn authenticator(&self) -> DigestAuthenticator {
        let mut credentials = DigestCredentials::new();
        if let Some(password) = &self.password {
            credentials.set_default(DigestUser::new(self.username.clone(), password.clone()));
        }
        DigestAuthenticator::new(credentials)
    }

    /// Our address of record: the account at the registrar's domain.
    pub fn address_of_record(&self) -> SipUri {
        SipUri::new(self.registrar.host_port.clone()).user(self.username.clone().into())
    }
}

/// Where the registration stands, for readiness and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// The first REGISTER is on its way.
    Registering,
    /// The registrar holds our binding for this long (refreshed before it lapses).
    Registered {
        /// The lifetime the registrar granted.
        expires: Duration,
    },
    /// The last attempt failed; another follows after the backoff.
    Failed {
        /// What went wrong and what to check.
        reason: String,
    },
}

/// A registration kept up in the background.
#[derive(Debug)]
pub struct Registration {
    /// Follows the registration.
    pub status: watch::Receiver<RegistrationStatus>,
    /// Ends once `stop` has completed and the binding is removed (or removing it failed).
    pub task: JoinHandle<()>,
}

/// Registers `account` from `agent` and keeps it registered until `stop` completes, then removes the
/// binding.
pub fn keep_registered(
    agent: &UserAgent,
    account: Account,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Registration {
    let (status, watching) = watch::channel(RegistrationStatus::Registering);
    let endpoint = agent.endpoint().clone();
    let contact = account_contact(agent, &account);
    let task = tokio::spawn(async move {
        tokio::pin!(stop);
        let registrar = account.registrar.default_print_ctx().to_string();
        let mut binding = Binding::new(
            NameAddr::uri(account.address_of_record()),
            contact,
            account.registrar.clone(),
            account.expires,
        );
        let mut backoff = RETRY_MIN;
        let mut registered = false;
        // Kept across refreshes, so a refresh answers the registrar's last challenge at once (a new
        // nonce is answered again); started afresh after a failure.
        let mut authenticator = account.authenticator();
        loop {
            let attempt = register(&endpoint, &mut binding, &mut authenticator, &account, false);
            let outcome = tokio::select! {
                () = &mut stop => break,
                outcome = attempt => outcome,
            };
            let wait = match outcome {
                Ok(granted) => {
                    if !registered {
                        tracing::info!(%registrar, user = %account.username, expires_s = granted.as_secs(), "registered with the SIP registrar");
                    }
                    registered = true;
                    backoff = RETRY_MIN;
                    status.send_replace(RegistrationStatus::Registered { expires: granted });
                    refresh_after(granted)
                }
                Err(reason) => {
                    registered = false;
                    tracing::warn!(%registrar, %reason, retry_in_s = backoff.as_secs(), "SIP registration failed");
                    status.send_replace(RegistrationStatus::Failed { reason });
                    authenticator = account.authenticator();
                    let wait = backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                    wait
                }
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if registered {
            let goodbye = register(&endpoint, &mut binding, &mut authenticator, &account, true);
            match tokio::time::timeout(UNREGISTER_WAIT, goodbye).await {
                Ok(Ok(_)) => tracing::info!(%registrar, "SIP registration removed"),
                Ok(Err(reason)) => {
                    tracing::warn!(%registrar, %reason, "cannot remove the SIP registration")
                }
                Err(_) => tracing::warn!(%registrar, "no answer to removing the SIP registration"),
            }
        }
        status.send_replace(RegistrationStatus::Failed {
            reason: "stopped".to_owned(),
        });
    });
    Registration {
        status: watching,
        task,
    }
}

/// The contact we register: the account's user at the address and port this agent listens on.
fn account_contact(agent: &UserAgent, account: &Account) -> Contact {
    let mut uri = agent.contact().uri.uri.clone();
    uri = uri.user(account.username.clone().into());
    Contact::new(NameAddr::uri(uri))
}

/// When to refresh a binding granted for `granted`: 10 s before it lapses, or halfway for short ones.
fn refresh_after(granted: Duration) -> Duration {
    if granted > MARGIN * 2 {
        granted - MARGIN
    } else {
        (granted / 2).max(Duration::from_secs(1))
    }
}

/// Sends one REGISTER (answering up to [`CHALLENGES`] digest challenges); returns the lifetime the
/// registrar granted. `remove`: ask for Expires: 0.
async fn register(
    endpoint: &Endpoint,
    binding: &mut Binding,
    authenticator: &mut DigestAuthenticator,
    account: &Account,
    remove: bool,
) -> Result<Duration, String> {
    let mut target = TargetTransportInfo::default();
    let mut challenges = 0;
    loop {
        let mut request = binding.create_register(remove);
        request.headers.insert_named(endpoint.allowed());
        authenticator.authorize_request(&mut request.headers);
        let mut transaction = endpoint
            .send_request(request, &mut target)
            .await
            .map_err(|e| format!("cannot send REGISTER: {e}"))?;
        let response = transaction.receive_final().await.map_err(|e| match e {
            ezk_sip_core::Error::RequestTimedOut => {
                "no answer from the registrar (check SIP_REGISTRAR and that it is reachable)"
                    .to_owned()
            }
            other => format!("REGISTER failed: {other}"),
        })?;
        let code = response.line.code.into_u16();
        match response.line.code.kind() {
            CodeKind::Success => return Ok(granted(&response, account.expires)),
            _ if code == 401 || code == 407 => {
                challenges += 1;
                if account.password.is_none() {
                    return Err(format!(
                        "the registrar asks for a password ({code}); set SIP_PASSWORD"
                    ));
                }
                if challenges > CHALLENGES {
                    return Err(format!(
                        "the registrar refused the credentials ({code}); check SIP_USERNAME and SIP_PASSWORD"
                    ));
                }
                let request = transaction.request();
                authenticator
                    .handle_rejection(
                        ezk_sip_auth::RequestParts {
                            line: &request.msg.line,
                            headers: &request.msg.headers,
                            body: &request.msg.body,
                        },
                        ezk_sip_auth::ResponseParts {
                            line: &response.line,
                            headers: &response.headers,
                            body: &response.body,
                        },
                    )
                    .map_err(|_| {
                        format!(
                            "the registrar refused the credentials ({code}); check SIP_USERNAME and SIP_PASSWORD"
                        )
                    })?;
            }
            // 423 Interval Too Brief: ask again with the registrar's Min-Expires.
            _ if code == 423 && !remove && binding.receive_error_response(response) => {}
            _ if code == 403 => {
                return Err(
                    "the registrar refused the account (403); check SIP_USERNAME and SIP_PASSWORD"
                        .to_owned(),
                );
            }
            _ => return Err(format!("the registrar answered {code}")),
        }
    }
}

/// The binding's lifetime from a 2xx: our contact's `expires` parameter, else the Expires header, else
/// what we asked for.
fn granted(response: &TsxResponse, asked: Duration) -> Duration {
    let from_contact = response
        .headers
        .get::<Vec<Contact>>(Name::CONTACT)
        .ok()
        .and_then(|contacts| {
            contacts.iter().find_map(|contact| {
                contact
                    .params
                    .get_val("expires")
                    .and_then(|v| v.parse::<u64>().ok())
            })
        });
    let from_header = response
        .headers
        .get_named::<Expires>()
        .ok()
        .map(|e| u64::from(e.0));
    from_contact
        .or(from_header)
        .map(Duration::from_secs)
        .unwrap_or(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_ten_seconds_early_or_halfway_for_short_bindings() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3590)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(30)),
            Duration::from_secs(20)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn the_account_debug_output_has_no_password() {
        let account = Account {
            registrar: "sip:pbx.example.com".parse().expect("uri"),
            username: "1001".into(),
            password: Some("hunter2".into()),
            expires: Duration::from_secs(300),
        };
        let shown = format!("{account:?}");
        assert!(shown.contains("1001"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            account.address_of_record().default_print_ctx().to_string(),
            "sip:1001@pbx.example.com"
        );
    }
}
