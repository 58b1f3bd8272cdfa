//! Settings that take one of a fixed set of words.

/// A setting value chosen from a fixed list of words.
pub(crate) trait Choice: Sized {
    /// Parses the lower-cased word.
    fn parse(text: &str) -> Option<Self>;
}

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The word used in configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Choice for $name {
            fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// Deployment stage.
    Environment {
        /// A developer's machine.
        Development = "development",
        /// Pre-production.
        Staging = "staging",
        /// Real callers.
        Production = "production",
    }
);

choice!(
    /// Log verbosity.
    LogLevel {
        /// Everything.
        Trace = "trace",
        /// Diagnostics.
        Debug = "debug",
        /// Normal operation.
        Info = "info",
        /// Something to look at.
        Warn = "warn",
        /// Something failed.
        Error = "error",
    }
);

choice!(
    /// Log line format.
    LogFormat {
        /// One JSON object per line, for log collectors.
        Json = "json",
        /// Human-readable.
        Text = "text",
    }
);

choice!(
    /// Phone network adapter.
    TelephonyProvider {
        /// Twilio Programmable Voice.
        Twilio = "twilio",
        /// Asterisk AudioSocket / ARI.
        Asterisk = "asterisk",
        /// Built-in SIP user agent.
        Sip = "sip",
        /// Generic WebSocket audio.
        Websocket = "websocket",
    }
);

choice!(
    /// Speech recognition model.
    SttModel {
        /// Whisper tiny.en: English only, the smallest and fastest.
        WhisperTiny = "whisper-tiny",
        /// Whisper base: 99 languages, about twice tiny's compute and fewer words wrong.
        WhisperBase = "whisper-base",
    }
);

choice!(
    /// Whether a SIP call's audio may, or must, be SRTP (SIP_SRTP).
    SrtpPolicy {
        /// SRTP when the caller offers it, plain RTP otherwise; the calls we place offer plain RTP.
        Optional = "optional",
        /// Only SRTP: a plain offer is refused (488), and the calls we place offer SRTP alone.
        Required = "required",
    }
);

choice!(
    /// Inference device.
    Device {
        /// CPU.
        Cpu = "cpu",
        /// NVIDIA GPU.
        Cuda = "cuda",
        /// GPU when present, else CPU.
        Auto = "auto",
    }
);

choice!(
    /// Numeric precision for speech recognition.
    ComputeType {
        /// The fastest precision measured at no loss of accuracy (float16).
        Default = "default",
        /// 8-bit integers.
        Int8 = "int8",
        /// Half precision, as the weights are shipped.
        Float16 = "float16",
    }
);

choice!(
    /// Speech synthesis engine.
    TtsEngine {
        /// Kokoro-82M (ONNX).
        Kokoro = "kokoro",
        /// Piper (ONNX VITS).
        Piper = "piper",
        /// espeak-ng, the last resort.
        Espeak = "espeak",
    }
);

choice!(
    /// Where the language model runs.
    LlmProvider {
        /// In-process llama.cpp.
        Embedded = "embedded",
        /// An Ollama server.
        Ollama = "ollama",
        /// An OpenAI-compatible server.
        Openai = "openai",
    }
);

choice!(
    /// A GGUF the project ships for the embedded engine (see `switchboard models list`).
    LlmModel {
        /// SmolLM2-135M-Instruct, Q4_1.
        Smollm2_135m = "smollm2-135m",
        /// Gemma 3 270M, Q4_K_M.
        Gemma3_270m = "gemma-3-270m",
    }
);

impl LlmModel {
    /// Where `switchboard models fetch` puts it, relative to MODELS_DIR.
    pub fn file(self) -> &'static str {
        match self {
            LlmModel::Smollm2_135m => "llm/SmolLM2-135M-Instruct.Q4_1.gguf",
            LlmModel::Gemma3_270m => "llm/gemma-3-270m-q4_k_m.gguf",
        }
    }
}

choice!(
    /// What to fall back to when the configured engine fails before answering.
    LlmFallback {
        /// The embedded model.
        Embedded = "embedded",
        /// Nothing: the failure reaches the call.
        None = "none",
    }
);

choice!(
    /// Noise suppression engine for the caller's audio.
    NoiseSuppression {
        /// STFT Wiener filter: a few microseconds a frame.
        Spectral = "spectral",
        /// RNNoise: strongest in pauses, about 100 microseconds a frame.
        Rnnoise = "rnnoise",
        /// None.
        Off = "off",
    }
);

choice!(
    /// The oldest TLS version served.
    TlsVersion {
        /// TLS 1.2 and 1.3.
        V1_2 = "1.2",
        /// TLS 1.3 only.
        V1_3 = "1.3",
    }
);

choice!(
    /// When text for the language model has personal data masked.
    LlmMasking {
        /// When the model's server is on another host.
        Remote = "remote",
        /// Always, the embedded model included.
        Always = "always",
        /// Never.
        Off = "off",
    }
);

choice!(
    /// What a call the agent places does about answering machines (AMD).
    Amd {
        /// Nothing: the agent greets whoever answers.
        Off = "off",
        /// The first seconds after the answer tell a person from a machine; a machine is hung up on.
        Detect = "detect",
        /// The same; on a machine the agent waits for its beep, leaves AMD_MESSAGE and hangs up.
        LeaveMessage = "leave_message",
    }
);

choice!(
    /// Whether calls are recorded.
    Recording {
        /// Never.
        Off = "off",
        /// Said in the greeting; a caller may decline.
        Announce = "announce",
        /// Every call.
        Always = "always",
    }
);
