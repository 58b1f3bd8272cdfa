//! Every setting Switchboard reads, written once: its `config.yaml` key, its environment variable, its
//! default, what values it allows and why it exists. Layering, validation messages, `config show`,
//! `config.example.yaml` and `.env.example` are all derived from this table, so they cannot drift apart.

/// One user-facing setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Dotted path in `config.yaml` (`server.port` is `server: { port: ... }`).
    pub key: &'static str,
    /// Environment variable that overrides the file. The seed's names are a public contract.
    pub env: &'static str,
    /// Value used when neither the file nor the environment sets it; `None` means "unset".
    pub default: Option<&'static str>,
    /// What the setting accepts, as shown in error messages.
    pub allowed: &'static str,
    /// One line for the generated example files.
    pub doc: &'static str,
    /// Credentials are redacted wherever the configuration is printed.
    pub secret: bool,
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident: $key:literal, $env:literal, default $default:expr, allowed $allowed:literal $(, $secret:ident)?; )+) => {
        $(
            #[doc = concat!("`", $key, "` / `", $env, "`.")]
            pub const $name: Setting = Setting {
                key: $key,
                env: $env,
                default: $default,
                allowed: $allowed,
                doc: concat!($($doc, " ",)+),
                secret: settings!(@secret $($secret)?),
            };
        )+
        /// All settings, in the order they are documented.
        pub const ALL: &[Setting] = &[$($name),+];
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

settings! {
    /// Address the HTTP server binds to.
    SERVER_HOST: "server.host", "SERVER_HOST", default Some("0.0.0.0"), allowed "an IP address or host name";
    /// Port of the HTTP API, WebSockets and console; 0 picks a free port (tests).
    SERVER_PORT: "server.port", "SERVER_PORT", default Some("8000"), allowed "an integer from 0 to 65535";
    /// Public base URL that telephony providers call back (Twilio webhooks, media streams).
    PUBLIC_URL: "server.public_url", "PUBLIC_URL", default None, allowed "an absolute http(s) URL";
    /// On SIGTERM, how long /ready answers 503 while the node still takes everything, before it stops taking connections: a load balancer's health check sees it leave first (0: stop at once).
    SHUTDOWN_DRAIN_MS: "server.shutdown_drain_ms", "SHUTDOWN_DRAIN_MS", default Some("0"), allowed "an integer from 0 to 600000 (milliseconds)";
    /// How long shutdown waits for in-flight requests and calls before it stops anyway.
    SHUTDOWN_GRACE_MS: "server.shutdown_grace_ms", "SHUTDOWN_GRACE_MS", default Some("10000"), allowed "an integer from 0 to 600000 (milliseconds)";
    /// With REDIS_HOST: how long a node may go without renewing its lease before the other nodes take it for dead and end its live calls with reason `node_lost` (it renews every third of this).
    NODE_LEASE_MS: "server.node_lease_ms", "NODE_LEASE_MS", default Some("15000"), allowed "an integer from 3000 to 300000 (milliseconds)";
    /// Longest an HTTP request may take to be answered (the WebSocket and event streams, once open, are not limited); 503 after it.
    REQUEST_TIMEOUT_MS: "server.request_timeout_ms", "REQUEST_TIMEOUT_MS", default Some("30000"), allowed "an integer from 1000 to 600000 (milliseconds)";
    /// PEM certificate chain served on SERVER_PORT; with TLS_KEY_FILE the API, console and WebSockets are HTTPS and WSS only (re-read when the file changes).
    TLS_CERT_FILE: "server.tls_cert_file", "TLS_CERT_FILE", default None, allowed "a path to a PEM certificate chain, leaf first";
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of TLS_CERT_FILE's certificate.
    TLS_KEY_FILE: "server.tls_key_file", "TLS_KEY_FILE", default None, allowed "a path to a PEM private key";
    /// Oldest TLS version a client may use; 1.2 only for clients that cannot speak 1.3.
    TLS_MIN_VERSION: "server.tls_min_version", "TLS_MIN_VERSION", default Some("1.3"), allowed "one of 1.2, 1.3";
    /// Deployment stage, reported in the start-up log.
    ENVIRONMENT: "environment", "ENVIRONMENT", default Some("development"), allowed "one of development, staging, production";
    /// Log verbosity.
    LOG_LEVEL: "log.level", "LOG_LEVEL", default Some("info"), allowed "one of trace, debug, info, warn, error";
    /// Log line format: one JSON object per line, or human-readable text.
    LOG_FORMAT: "log.format", "LOG_FORMAT", default Some("json"), allowed "one of json, text";
    /// Where the embedded database and other state live (default: $XDG_DATA_HOME/switchboard or ~/.local/share/switchboard).
    DATA_DIR: "paths.data_dir", "DATA_DIR", default None, allowed "a directory path";
    /// Where model files are kept (default: DATA_DIR/models).
    MODELS_DIR: "paths.models_dir", "MODELS_DIR", default None, allowed "a directory path";
    /// Which phone network adapter places outbound calls.
    TELEPHONY_PROVIDER: "telephony.provider", "TELEPHONY_PROVIDER", default Some("websocket"), allowed "one of twilio, asterisk, sip, websocket";
    /// Twilio account SID (starts with AC).
    TWILIO_ACCOUNT_SID: "telephony.twilio.account_sid", "TWILIO_ACCOUNT_SID", default None, allowed "a Twilio account SID (AC followed by 32 hex digits)";
    /// Twilio auth token: signs webhooks and authenticates REST calls.
    TWILIO_AUTH_TOKEN: "telephony.twilio.auth_token", "TWILIO_AUTH_TOKEN", default None, allowed "the account's auth token", secret;
    /// Caller id for outbound Twilio calls.
    TWILIO_PHONE_NUMBER: "telephony.twilio.phone_number", "TWILIO_PHONE_NUMBER", default None, allowed "an E.164 number such as +14155550100";
    /// Base URL of Twilio's REST API (outbound calls, transfer, hang-up); point it elsewhere only to test against a stand-in server.
    TWILIO_API_URL: "telephony.twilio.api_url", "TWILIO_API_URL", default Some("https://api.twilio.com"), allowed "an absolute http(s) URL";
    /// Where a caller who asks for a person is transferred: a phone number, or a SIP address for a PBX queue.
    TRANSFER_TARGET: "telephony.transfer_target", "TRANSFER_TARGET", default None, allowed "an E.164 number such as +14155550100, or a sip: URI";
    /// TCP port of the Asterisk AudioSocket listener (on SERVER_HOST); unset: 9092 with TELEPHONY_PROVIDER=asterisk, no listener otherwise. 0 picks a free port.
    AUDIOSOCKET_PORT: "telephony.audiosocket_port", "AUDIOSOCKET_PORT", default None, allowed "an integer from 0 to 65535";
    /// The address the AudioSocket listener binds; unset: SERVER_HOST. Bind it to the network Asterisk reaches it on.
    AUDIOSOCKET_HOST: "telephony.audiosocket_host", "AUDIOSOCKET_HOST", default None, allowed "an IP address or host name";
    /// Who may connect to the AudioSocket listener (AudioSocket has no credentials): anyone else is closed at once and leaves no call record. Unset: this machine (loopback) and the address ARI_URL names.
    AUDIOSOCKET_TRUSTED_SOURCES: "telephony.audiosocket_trusted_sources", "AUDIOSOCKET_TRUSTED_SOURCES", default None, allowed "IP addresses and networks separated by commas, such as 10.0.0.5,192.168.1.0/24; or none";
    /// Asterisk's HTTP server for ARI (outbound calls, calls sent to Stasis, transfers, hang-ups); unset: no ARI.
    ARI_URL: "telephony.ari.url", "ARI_URL", default None, allowed "an absolute http(s) URL such as http://asterisk:8088";
    /// ARI user (ari.conf).
    ARI_USER: "telephony.ari.user", "ARI_USER", default None, allowed "an ARI user name";
    /// ARI password (ari.conf).
    ARI_PASSWORD: "telephony.ari.password", "ARI_PASSWORD", default None, allowed "the ARI user's password", secret;
    /// The Stasis application this node answers (one per node: every node subscribed to an app gets its events).
    ARI_APP: "telephony.ari.app", "ARI_APP", default Some("switchboard"), allowed "a Stasis application name (letters, digits, - and _)";
    /// How ARI dials a number (outbound calls and transfers); {number} is replaced by the number or SIP user.
    ARI_ENDPOINT: "telephony.ari.endpoint", "ARI_ENDPOINT", default Some("PJSIP/{number}"), allowed "an Asterisk dial string containing {number}, such as PJSIP/{number}@trunk";
    /// Where Asterisk reaches this node's AudioSocket listener (host:port) for the external media of ARI calls.
    ARI_MEDIA_ADDRESS: "telephony.ari.media_address", "ARI_MEDIA_ADDRESS", default None, allowed "host:port";
    /// UDP and TCP port of the SIP user agent (on SERVER_HOST); unset: 5060 with TELEPHONY_PROVIDER=sip, no SIP otherwise. 0 picks a free port.
    SIP_PORT: "telephony.sip.port", "SIP_PORT", default None, allowed "an integer from 0 to 65535";
    /// The IP address PBXs and phones reach this node on, written into SIP Contact headers and SDP; unset: SERVER_HOST when it is one address, else the address of the default route.
    SIP_ADDRESS: "telephony.sip.address", "SIP_ADDRESS", default None, allowed "an IPv4 or IPv6 address";
    /// A registrar to register this node with (a PBX or SIP provider), refreshed before it lapses; calls to the account then reach this node. Unset: no registration (the PBX sends calls to SIP_ADDRESS:SIP_PORT itself).
    SIP_REGISTRAR: "telephony.sip.registrar", "SIP_REGISTRAR", default None, allowed "a sip: URI such as sip:pbx.example.com or sip:10.0.0.5:5060";
    /// The account at SIP_REGISTRAR and SIP_TRUNK: the user we register as, and the digest user name.
    SIP_USERNAME: "telephony.sip.username", "SIP_USERNAME", default Some("switchboard"), allowed "a SIP user name (letters, digits and . - _ +)";
    /// The account's digest password, for registration and for calls the PBX challenges.
    SIP_PASSWORD: "telephony.sip.password", "SIP_PASSWORD", default None, allowed "the SIP account's password", secret;
    /// The registration lifetime asked for; the registrar may grant another, and it is refreshed 10 s before it lapses.
    SIP_REGISTER_EXPIRES_S: "telephony.sip.register_expires_s", "SIP_REGISTER_EXPIRES_S", default Some("300"), allowed "an integer from 20 to 86400 (seconds)";
    /// Where calls placed through the API (POST /api/v1/calls with TELEPHONY_PROVIDER=sip) are sent: the PBX or provider; the number called becomes the user part. Unset: SIP_REGISTRAR.
    SIP_TRUNK: "telephony.sip.trunk", "SIP_TRUNK", default None, allowed "a sip: URI such as sip:pbx.example.com:5060";
    /// How long an incoming SIP call rings (180 Ringing) before it is answered; 0 answers at once. A caller who hangs up while it rings (CANCEL) leaves a record ended as caller_hung_up.
    SIP_ANSWER_AFTER_MS: "telephony.sip.answer_after_ms", "SIP_ANSWER_AFTER_MS", default Some("0"), allowed "an integer from 0 to 60000 (milliseconds)";
    /// How long a call placed through SIP may ring before it is cancelled as not answered.
    SIP_RING_TIMEOUT_S: "telephony.sip.ring_timeout_s", "SIP_RING_TIMEOUT_S", default Some("45"), allowed "an integer from 5 to 300 (seconds)";
    /// Who may call the SIP user agent without credentials: an INVITE from anywhere else is answered 403 Forbidden (or challenged, with SIP_INBOUND_USERNAME set) and leaves no call record. Unset: this machine (loopback) and the addresses SIP_REGISTRAR and SIP_TRUNK resolve to.
    SIP_TRUSTED_SOURCES: "telephony.sip.trusted_sources", "SIP_TRUSTED_SOURCES", default None, allowed "IP addresses and networks separated by commas, such as 10.0.0.5,192.168.1.0/24; or none";
    /// A user name callers outside SIP_TRUSTED_SOURCES may prove with digest authentication (401 challenge); with SIP_INBOUND_PASSWORD.
    SIP_INBOUND_USERNAME: "telephony.sip.inbound_username", "SIP_INBOUND_USERNAME", default None, allowed "a SIP user name (letters, digits and . - _ +)";
    /// The password of SIP_INBOUND_USERNAME.
    SIP_INBOUND_PASSWORD: "telephony.sip.inbound_password", "SIP_INBOUND_PASSWORD", default None, allowed "a password", secret;
    /// Port of SIP over TLS (on SERVER_HOST) with the node's certificate (TLS_CERT_FILE and TLS_KEY_FILE); 5061 is usual. Unset: no SIP over TLS. A call that comes in over TLS goes on over TLS (its Contact says transport=tls).
    SIP_TLS_PORT: "telephony.sip.tls_port", "SIP_TLS_PORT", default None, allowed "an integer from 1 to 65535, not SIP_PORT";
    /// CA certificates (PEM) trusted, besides the machine's, when this node opens SIP over TLS itself: to a transport=tls trunk, or back to a caller that called over TLS (our BYE). For a PBX with a private CA.
    SIP_TLS_CA_FILE: "telephony.sip.tls_ca_file", "SIP_TLS_CA_FILE", default None, allowed "a path to a PEM file";
    /// Whether a SIP call's audio may or must be SRTP (AES-CM with HMAC-SHA1, keys in the SDP's a=crypto lines): optional answers SRTP when the caller offers it; required refuses a plain offer with 488 and offers only SRTP on the calls we place. The keys are secret only when the signalling is: use it with SIP over TLS.
    SIP_SRTP: "telephony.sip.srtp", "SIP_SRTP", default Some("optional"), allowed "optional or required";
    /// Send a call's audio to wherever the caller's first RTP packet came from and keep to that stream's SSRC (for callers behind NAT). Off: RTP is taken only from the address the caller's SDP names.
    SIP_SYMMETRIC_RTP: "telephony.sip.symmetric_rtp", "SIP_SYMMETRIC_RTP", default Some("false"), allowed "true or false";
    /// Lowest UDP port for call audio (RTP on even ports, RTCP on the next odd one).
    RTP_PORT_MIN: "telephony.sip.rtp_port_min", "RTP_PORT_MIN", default Some("10000"), allowed "an integer from 1024 to 65534";
    /// Highest UDP port for call audio; the range must hold two ports per concurrent call.
    RTP_PORT_MAX: "telephony.sip.rtp_port_max", "RTP_PORT_MAX", default Some("20000"), allowed "an integer from 1025 to 65535, above RTP_PORT_MIN";
    /// Speech-to-text model.
    WHISPER_MODEL: "stt.whisper_model", "WHISPER_MODEL", default Some("whisper-tiny"), allowed "whisper-tiny (English only, fastest) or whisper-base (99 languages, fewer words wrong, about twice the compute)";
    /// Speech-to-text model for the caller's answer to a question for a name, a policy or phone number or an e-mail address, said letter by letter or digit by digit, which whisper-tiny often mishears (whisper-base got 80 of 100 spoken claim fields where tiny alone got an estimated 73, but misheard a recorded phone number tiny got right); `none` hears every answer with WHISPER_MODEL.
    WHISPER_SPELLING_MODEL: "stt.whisper_spelling_model", "WHISPER_SPELLING_MODEL", default Some("none"), allowed "whisper-tiny, whisper-base, or none (every answer on WHISPER_MODEL)";
    /// Device for speech recognition.
    WHISPER_DEVICE: "stt.whisper_device", "WHISPER_DEVICE", default Some("cpu"), allowed "one of cpu, cuda, auto";
    /// Precision of the Whisper weights: float16 (as shipped) or int8 (8-bit blocks, half the memory); `default` is float16, the faster here.
    WHISPER_COMPUTE_TYPE: "stt.whisper_compute_type", "WHISPER_COMPUTE_TYPE", default Some("default"), allowed "one of default, int8, float16 (float32 is not offered: the shipped weights are float16)";
    /// CPU threads one transcription uses.
    WHISPER_THREADS: "stt.threads", "WHISPER_THREADS", default Some("2"), allowed "an integer from 1 to 64";
    /// Language spoken by callers; unset uses TTS_LANGUAGE (the conversation's language) rather than detecting it per utterance.
    WHISPER_LANGUAGE: "stt.language", "WHISPER_LANGUAGE", default None, allowed "an ISO 639-1 code such as en, fr, de";
    /// The shortest audio window Whisper's encoder looks at (longer utterances get a window that covers them). Its cost grows with the window; 8 s costs tiny.en 0.3 points of telephone-path WER against 15 s and answers a quarter of a second sooner (see docs/benchmarks.md).
    WHISPER_WINDOW_MS: "stt.window_ms", "WHISPER_WINDOW_MS", default Some("8000"), allowed "an integer from 5000 to 30000 (milliseconds; 30000 is Whisper's full window)";
    /// How much new caller audio triggers another partial transcript while the caller speaks.
    STT_PARTIAL_INTERVAL_MS: "stt.partial_interval_ms", "STT_PARTIAL_INTERVAL_MS", default Some("500"), allowed "an integer from 100 to 10000 (milliseconds)";
    /// Start the final transcription as soon as the caller goes quiet, while the end of the turn is still being confirmed (the pass is reused when the caller said nothing more). Off: the final pass starts once the turn has ended.
    STT_EARLY_FINAL: "stt.early_final", "STT_EARLY_FINAL", default Some("true"), allowed "true or false";
    /// A partial transcription still running when a pass someone waits for is asked (the caller went quiet, or the turn ended) is stopped, so that pass starts at once on its cores. Off: the pass waits for the partial to finish.
    STT_PREEMPT_PARTIALS: "stt.preempt_partials", "STT_PREEMPT_PARTIALS", default Some("true"), allowed "true or false";
    /// Text-to-speech engine. Piper is the default until Kokoro's English voices ship in a package.
    TTS_MODEL: "tts.model", "TTS_MODEL", default Some("piper"), allowed "one of kokoro, piper, espeak";
    /// Voice of the TTS engine.
    TTS_VOICE: "tts.voice", "TTS_VOICE", default Some("en_US-joe-medium"), allowed "a voice name of the chosen engine";
    /// Speaking rate in percent of the voice's natural speed.
    TTS_RATE: "tts.rate", "TTS_RATE", default Some("100"), allowed "an integer from 50 to 200 (percent)";
    /// CPU threads one synthesis uses.
    TTS_THREADS: "tts.threads", "TTS_THREADS", default Some("2"), allowed "an integer from 1 to 64";
    /// Kokoro voices file (voices-v1.0.bin / .npz with af_heart and the other voices); default: the voice pack in MODELS_DIR.
    KOKORO_VOICES: "tts.kokoro_voices", "KOKORO_VOICES", default None, allowed "a path to a Kokoro voices file (.npz or .bin)";
    /// Language of the conversation (speech recognition, synthesis and the agent).
    TTS_LANGUAGE: "tts.language", "TTS_LANGUAGE", default Some("en"), allowed "an ISO 639-1 code such as en, fr, de";
    /// Where answers come from: the in-process model, an Ollama server, or an OpenAI-compatible server.
    LLM_PROVIDER: "llm.provider", "LLM_PROVIDER", default Some("embedded"), allowed "one of embedded, ollama, openai";
    /// A GGUF file for the embedded engine instead of the shipped default model.
    LLM_MODEL_PATH: "llm.model_path", "LLM_MODEL_PATH", default None, allowed "a path to a .gguf file";
    /// Ollama server.
    OLLAMA_HOST: "llm.ollama_host", "OLLAMA_HOST", default Some("http://localhost:11434"), allowed "an absolute http(s) URL";
    /// Ollama model tag.
    OLLAMA_MODEL: "llm.ollama_model", "OLLAMA_MODEL", default Some("llama3.2:3b"), allowed "an Ollama model tag";
    /// Shipped GGUF the embedded engine runs when LLM_MODEL_PATH is unset.
    LLM_MODEL: "llm.model", "LLM_MODEL", default Some("smollm2-135m"), allowed "one of smollm2-135m, gemma-3-270m";
    /// CPU threads of the embedded engine.
    LLM_THREADS: "llm.threads", "LLM_THREADS", default Some("2"), allowed "an integer from 1 to 64";
    /// Context of the embedded engine in tokens (prompt plus answer).
    LLM_CONTEXT_TOKENS: "llm.context_tokens", "LLM_CONTEXT_TOKENS", default Some("4096"), allowed "an integer from 512 to 131072";
    /// Engine tried when LLM_PROVIDER fails before answering: the embedded model, or none.
    LLM_FALLBACK: "llm.fallback", "LLM_FALLBACK", default Some("embedded"), allowed "one of embedded, none";
    /// Answer the caller's words once they have been quiet for VAD_CUE_SILENCE_MS (half of VAD_MIN_SILENCE_MS with cues off), while the end of the turn is still being confirmed: the model reads them (and generates the answer, when it is generated) on a draft of the conversation, and its words are spoken only if the turn ends with the same words; the draft is dropped when the caller goes on. Needs STT_EARLY_FINAL. Off: the model starts once the turn has ended.
    LLM_READ_AHEAD: "llm.read_ahead", "LLM_READ_AHEAD", default Some("true"), allowed "true or false";
    /// OpenAI-compatible server, up to and including /v1.
    OPENAI_BASE_URL: "llm.openai_base_url", "OPENAI_BASE_URL", default Some("http://localhost:8080/v1"), allowed "an absolute http(s) URL ending in /v1";
    /// Model name sent to the OpenAI-compatible server.
    OPENAI_MODEL: "llm.openai_model", "OPENAI_MODEL", default Some("default"), allowed "a model name the server knows";
    /// Bearer key for the OpenAI-compatible server, if it wants one.
    OPENAI_API_KEY: "llm.openai_api_key", "OPENAI_API_KEY", default None, allowed "the server's API key", secret;
    /// Calls carried at once; the next one is refused with a clear error.
    MAX_CONCURRENT_CALLS: "calls.max_concurrent", "MAX_CONCURRENT_CALLS", default Some("100"), allowed "an integer from 1 to 100000";
    /// Turns after which the agent ends the call politely.
    MAX_CONVERSATION_TURNS: "calls.max_conversation_turns", "MAX_CONVERSATION_TURNS", default Some("50"), allowed "an integer from 1 to 10000";
    /// Longest a call may last: then the agent says goodbye politely and hangs up.
    MAX_CALL_DURATION_S: "calls.max_duration_s", "MAX_CALL_DURATION_S", default Some("3600"), allowed "an integer from 10 to 86400 (seconds)";
    /// Longest wait for an answer before the agent apologises and recovers.
    RESPONSE_TIMEOUT_MS: "calls.response_timeout_ms", "RESPONSE_TIMEOUT_MS", default Some("5000"), allowed "an integer from 100 to 600000 (milliseconds)";
    /// Caller silence after which the agent asks again whether they are still there.
    SILENCE_REPROMPT_MS: "calls.silence_reprompt_ms", "SILENCE_REPROMPT_MS", default Some("8000"), allowed "an integer from 1000 to 600000 (milliseconds)";
    /// The key a caller presses alone (then `#` or a pause) to be handed to a person; `off` for none.
    KEYPAD_HANDOVER_KEY: "calls.keypad_handover_key", "KEYPAD_HANDOVER_KEY", default Some("0"), allowed "a digit 0-9, or off";
    /// How long after the last key the keys a caller typed count as entered (or at once with `#`).
    KEYPAD_PAUSE_MS: "calls.keypad_pause_ms", "KEYPAD_PAUSE_MS", default Some("3000"), allowed "an integer from 500 to 20000 (milliseconds)";
    /// Answering-machine detection on the calls the agent places through the phone network: off; detect (a machine is hung up on); leave_message (the agent waits for the machine's beep, leaves AMD_MESSAGE and hangs up). The outcome (human, machine, unknown) is stored on the call.
    AMD: "calls.amd", "AMD", default Some("off"), allowed "one of off, detect, leave_message";
    /// What the agent says to an answering machine with AMD=leave_message; unset: a short message asking to call the company back.
    AMD_MESSAGE: "calls.amd_message", "AMD_MESSAGE", default None, allowed "a sentence or two of text";
    /// Reprompts without an answer before the agent hangs up politely.
    SILENCE_MAX_REPROMPTS: "calls.silence_max_reprompts", "SILENCE_MAX_REPROMPTS", default Some("2"), allowed "an integer from 0 to 20";
    /// Caller speech over the agent needed to interrupt it; shorter sounds ("mhm", "okay") are backchannels.
    BARGE_IN_MIN_SPEECH_MS: "calls.barge_in_min_speech_ms", "BARGE_IN_MIN_SPEECH_MS", default Some("500"), allowed "an integer from 100 to 5000 (milliseconds)";
    /// Wait for an answer's first audio after which the agent says a short filler ("one moment").
    FILLER_AFTER_MS: "calls.filler_after_ms", "FILLER_AFTER_MS", default Some("2000"), allowed "an integer from 100 to 600000 (milliseconds)";
    /// Give the agent the summaries of the caller's earlier calls, found by the caller's number. Off by default: a caller id is easily spoofed, so anyone calling from another person's number would hear about that person's calls. On, the summaries enter the prompt quoted as records, never as instructions.
    CALLER_MEMORY: "calls.caller_memory", "CALLER_MEMORY", default Some("false"), allowed "true or false";
    /// Record calls, both sides: off; announce (the greeting says the call is recorded, and a caller who says they do not want it is not recorded, what was recorded so far deleted); always. Recordings are sealed with DATA_KEY_FILE, which must be set.
    RECORDING: "calls.recording", "RECORDING", default Some("off"), allowed "one of off, announce, always";
    /// HS256 secret that signs accepted JWT bearer tokens (at least 32 bytes); unset accepts API keys only.
    JWT_SECRET: "auth.jwt_secret", "JWT_SECRET", default None, allowed "a random string of at least 32 characters", secret;
    /// PEM public key (RS256 or ES256) that verifies accepted JWT bearer tokens, for tokens from an identity provider.
    JWT_PUBLIC_KEY_FILE: "auth.jwt_public_key_file", "JWT_PUBLIC_KEY_FILE", default None, allowed "a path to a PEM public key (RSA or EC P-256)";
    /// The issuer (`iss`) accepted JWTs must name, such as your identity provider's URL; unset: not checked.
    JWT_ISSUER: "auth.jwt_issuer", "JWT_ISSUER", default None, allowed "the issuer string your identity provider puts in its tokens";
    /// The audience (`aud`) accepted JWTs must name, such as this API's client id at the identity provider; unset: a token that names an audience is refused.
    JWT_AUDIENCE: "auth.jwt_audience", "JWT_AUDIENCE", default None, allowed "the audience string of this API at your identity provider";
    /// An OpenID Connect issuer whose access tokens are accepted (its `iss`, such as https://id.example.com/realms/callcenter): its keys are found through `.well-known/openid-configuration` and read again when a token names a key not seen yet.
    OIDC_ISSUER: "auth.oidc_issuer", "OIDC_ISSUER", default None, allowed "an absolute http(s) URL";
    /// The audience (`aud`) the identity provider's tokens must name for this API; required with OIDC_ISSUER.
    OIDC_AUDIENCE: "auth.oidc_audience", "OIDC_AUDIENCE", default None, allowed "the audience (client id) of this API at your identity provider";
    /// The claim holding the Switchboard role (admin, supervisor or viewer; a list takes its highest), a dotted path for a nested one such as realm_access.roles.
    OIDC_ROLE_CLAIM: "auth.oidc_role_claim", "OIDC_ROLE_CLAIM", default Some("role"), allowed "a claim name or dotted path";
    /// API requests one credential may make per minute (counted in Redis when REDIS_HOST is set, so across nodes); 0 turns the limit off.
    RATE_LIMIT_PER_MINUTE: "auth.rate_limit_per_minute", "RATE_LIMIT_PER_MINUTE", default Some("600"), allowed "an integer from 0 to 1000000";
    /// HTTP requests one source address may make per minute, counted before its credentials are checked (so a stranger guessing keys is slowed and failed sign-ins cannot flood the audit log); 0 turns the limit off.
    RATE_LIMIT_PER_SOURCE_PER_MINUTE: "auth.rate_limit_per_source_per_minute", "RATE_LIMIT_PER_SOURCE_PER_MINUTE", default Some("1200"), allowed "an integer from 0 to 1000000";
    /// Caller audio a call may hold before it is processed; a call further behind drops its oldest audio (counted in switchboard_caller_audio_dropped_total).
    AUDIO_BUFFER_SIZE_MS: "audio.buffer_size_ms", "AUDIO_BUFFER_SIZE_MS", default Some("5000"), allowed "an integer from 100 to 60000 (milliseconds)";
    /// Voice activity detection sensitivity; 3 hears the quietest speech, 0 ignores the most noise.
    VAD_SENSITIVITY: "audio.vad_sensitivity", "VAD_SENSITIVITY", default Some("2"), allowed "an integer from 0 to 3 (3 is the most sensitive)";
    /// Speech shorter than this is not a turn (a cough, a click).
    VAD_MIN_SPEECH_MS: "audio.vad_min_speech_ms", "VAD_MIN_SPEECH_MS", default Some("96"), allowed "an integer from 32 to 2000 (milliseconds)";
    /// Silence shorter than this does not end speech (a pause between words).
    VAD_MIN_SILENCE_MS: "audio.vad_min_silence_ms", "VAD_MIN_SILENCE_MS", default Some("320"), allowed "an integer from 64 to 5000 (milliseconds)";
    /// Silence that ends a turn early when its transcript sounds finished (a sentence of three words or more ends, no trailing "and" or "um"); the full VAD_MIN_SILENCE_MS otherwise.
    VAD_CUE_SILENCE_MS: "audio.vad_cue_silence_ms", "VAD_CUE_SILENCE_MS", default Some("160"), allowed "an integer from 0 to 5000 (milliseconds; 0 turns transcript cues off, as does a value not below VAD_MIN_SILENCE_MS)";
    /// Silence that ends a turn whose transcript so far sounds unfinished (a trailing comma, "and", "my number is", a group of digits that may go on: the caller is mid-sentence), or is still being transcribed (the answer waits for that transcript anyway). Needs STT_EARLY_FINAL. 0, or a value not above VAD_MIN_SILENCE_MS, turns the hold off.
    VAD_HOLD_SILENCE_MS: "audio.vad_hold_silence_ms", "VAD_HOLD_SILENCE_MS", default Some("1000"), allowed "an integer from 0 to 5000 (milliseconds)";
    /// Noise suppression on the caller's audio: a light spectral Wiener filter, RNNoise (stronger in pauses, 20x the CPU), or none.
    NOISE_SUPPRESSION: "audio.noise_suppression", "NOISE_SUPPRESSION", default Some("spectral"), allowed "one of spectral, rnnoise, off";
    /// Echo cancellation on the caller's audio, against the agent's audio as it was sent: the agent does not hear itself on a line that returns its voice (a speakerphone, a 2-wire hybrid). A line found to return no echo is left untouched.
    ECHO_CANCELLATION: "audio.echo_cancellation", "ECHO_CANCELLATION", default Some("true"), allowed "true or false";
    /// Full database URL (postgres://... or sqlite:...); overrides the POSTGRES_* settings.
    DATABASE_URL: "database.url", "DATABASE_URL", default None, allowed "a postgres:// or sqlite: URL", secret;
    /// A read-only PostgreSQL (a streaming replica) for the list endpoints (`GET /api/v1/calls`, the audit log); they read the primary when it is unset or cannot be reached.
    DATABASE_READ_URL: "database.read_url", "DATABASE_READ_URL", default None, allowed "a postgres:// URL (with a PostgreSQL DATABASE_URL or POSTGRES_HOST)", secret;
    /// File of keys that seal callers' data at rest with AES-256-GCM: the claim, the call's context and the caller's and callee's numbers (one key a line, `<id> <base64 of 32 bytes>`, the sealing key first; make one with `switchboard keys data-key`). Unset: stored in plain text.
    DATA_KEY_FILE: "database.data_key_file", "DATA_KEY_FILE", default None, allowed "a path to a key file";
    /// Apply pending database migrations at start-up.
    DATABASE_AUTO_MIGRATE: "database.auto_migrate", "DATABASE_AUTO_MIGRATE", default Some("true"), allowed "true or false";
    /// PostgreSQL: the longest any one statement may run (its `statement_timeout`), so a lock held elsewhere or a runaway query cannot hold a call's write or an API request; migrations run without it. 0 turns it off.
    DATABASE_STATEMENT_TIMEOUT_MS: "database.statement_timeout_ms", "DATABASE_STATEMENT_TIMEOUT_MS", default Some("10000"), allowed "an integer from 0 to 3600000 (milliseconds)";
    /// PostgreSQL host; when unset, the embedded SQLite database in DATA_DIR is used.
    POSTGRES_HOST: "database.postgres.host", "POSTGRES_HOST", default None, allowed "a host name or IP address";
    /// PostgreSQL port.
    POSTGRES_PORT: "database.postgres.port", "POSTGRES_PORT", default Some("5432"), allowed "an integer from 1 to 65535";
    /// PostgreSQL database name.
    POSTGRES_DB: "database.postgres.db", "POSTGRES_DB", default Some("switchboard"), allowed "a database name";
    /// PostgreSQL user.
    POSTGRES_USER: "database.postgres.user", "POSTGRES_USER", default Some("switchboard"), allowed "a user name";
    /// PostgreSQL password.
    POSTGRES_PASSWORD: "database.postgres.password", "POSTGRES_PASSWORD", default None, allowed "the user's password", secret;
    /// Redis host for state shared between nodes; when unset, live state stays in this process.
    REDIS_HOST: "redis.host", "REDIS_HOST", default None, allowed "a host name or IP address";
    /// Redis port.
    REDIS_PORT: "redis.port", "REDIS_PORT", default Some("6379"), allowed "an integer from 1 to 65535";
    /// Redis password.
    REDIS_PASSWORD: "redis.password", "REDIS_PASSWORD", default None, allowed "the server's password", secret;
    /// Speak TLS to Redis (as a `rediss://` URL does): the server's certificate is checked against the system's CAs, or REDIS_CA_FILE.
    REDIS_TLS: "redis.tls", "REDIS_TLS", default Some("false"), allowed "true or false";
    /// PEM CA certificate that signed the Redis server's certificate, when the system does not trust it.
    REDIS_CA_FILE: "redis.ca_file", "REDIS_CA_FILE", default None, allowed "a path to a PEM CA certificate";
    /// Redis Sentinels to ask for the current master, instead of REDIS_HOST: after a failover the nodes find and use the new master (REDIS_PASSWORD, REDIS_TLS and REDIS_CA_FILE apply to the master).
    REDIS_SENTINELS: "redis.sentinels", "REDIS_SENTINELS", default None, allowed "comma-separated host:port pairs";
    /// The name the Sentinels monitor the master under (`sentinel monitor <name> ...`).
    REDIS_SENTINEL_MASTER: "redis.sentinel_master", "REDIS_SENTINEL_MASTER", default Some("mymaster"), allowed "a master name";
    /// The Sentinels' own password (`requirepass` in sentinel.conf), when they ask for one.
    REDIS_SENTINEL_PASSWORD: "redis.sentinel_password", "REDIS_SENTINEL_PASSWORD", default None, allowed "the Sentinels' password", secret;
    /// Days a call's transcript, claim, synthesis and live events are kept after it ends; then `switchboard retention run` and the hourly purge delete the call. Unset: kept until erased.
    RETENTION_DAYS: "privacy.retention_days", "RETENTION_DAYS", default None, allowed "an integer from 1 to 36500 (days)";
    /// Store transcript lines and post-call syntheses with phone numbers, card numbers, e-mail addresses and IBANs masked (written or said in words; the last four digits kept). The claim still gets the values the caller gave: they are read from the caller's words before the line is stored.
    MASK_PII_IN_TRANSCRIPTS: "privacy.mask_pii_in_transcripts", "MASK_PII_IN_TRANSCRIPTS", default Some("true"), allowed "true or false";
    /// Mask personal data in the text sent to the language model: remote (when Ollama or the OpenAI-compatible server is on another host), always, or off.
    MASK_PII_FOR_LLM: "privacy.mask_pii_for_llm", "MASK_PII_FOR_LLM", default Some("remote"), allowed "one of remote, always, off";
    /// Days audit log entries are kept (their own setting: an audit trail usually outlives the data it is about). Unset: kept.
    AUDIT_RETENTION_DAYS: "privacy.audit_retention_days", "AUDIT_RETENTION_DAYS", default None, allowed "an integer from 1 to 36500 (days)";
    /// Serve Prometheus metrics at /metrics.
    ENABLE_METRICS: "observability.enable_metrics", "ENABLE_METRICS", default Some("true"), allowed "true or false";
    /// Serve /metrics on this address of its own (for example 127.0.0.1:9464, reachable by Prometheus only) rather than on SERVER_HOST:SERVER_PORT beside the API; port 0 picks a free one.
    METRICS_ADDRESS: "observability.metrics_address", "METRICS_ADDRESS", default None, allowed "an IP address and port such as 127.0.0.1:9464";
    /// Export traces over OTLP.
    ENABLE_TRACING: "observability.enable_tracing", "ENABLE_TRACING", default Some("false"), allowed "true or false";
    /// OTLP collector endpoint for traces.
    OTEL_EXPORTER_OTLP_ENDPOINT: "observability.otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", default None, allowed "an absolute http(s) URL";
}

/// The setting with this `config.yaml` key, if any.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    ALL.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_and_env_names_are_unique() {
        let keys: HashSet<_> = ALL.iter().map(|s| s.key).collect();
        let envs: HashSet<_> = ALL.iter().map(|s| s.env).collect();
        assert_eq!(keys.len(), ALL.len());
        assert_eq!(envs.len(), ALL.len());
    }

    #[test]
    fn no_key_is_both_a_value_and_a_section() {
        for a in ALL {
            for b in ALL {
                assert!(
                    !b.key.starts_with(&format!("{}.", a.key)),
                    "{} is a value but {} treats it as a section",
                    a.key,
                    b.key
                );
            }
        }
    }

    #[test]
    fn secrets_have_no_default() {
        for s in ALL.iter().filter(|s| s.secret) {
            assert_eq!(s.default, None, "{} is a secret with a default", s.env);
        }
    }
}
