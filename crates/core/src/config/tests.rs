use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn load(pairs: &'static [(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    Config::from_layers(None, &env_of(pairs))
}

#[test]
fn defaults_are_valid_and_embedded() {
    let c = load(&[("HOME", "/home/op")]).unwrap();
    assert_eq!(c.server.port, 8000);
    assert_eq!(c.calls.max_concurrent, 100);
    assert_eq!(c.calls.response_timeout, Duration::from_millis(5000));
    assert_eq!(c.llm.provider, LlmProvider::Embedded);
    assert!(c.redis.is_none());
    assert_eq!(
        c.paths.data_dir,
        PathBuf::from("/home/op/.local/share/switchboard")
    );
    assert_eq!(
        c.paths.models_dir,
        PathBuf::from("/home/op/.local/share/switchboard/models")
    );
    match &c.database.target {
        DatabaseTarget::Sqlite { path } => assert!(path.ends_with("switchboard.db")),
        other => panic!("expected SQLite, got {other:?}"),
    }
}

#[test]
fn a_non_numeric_port_names_the_setting_and_what_is_allowed() {
    let err = load(&[("SERVER_PORT", "abc")]).unwrap_err().to_string();
    assert!(err.contains("SERVER_PORT"), "{err}");
    assert!(err.contains("server.port"), "{err}");
    assert!(err.contains("\"abc\""), "{err}");
    assert!(err.contains("0 to 65535"), "{err}");
    assert!(err.contains("environment"), "{err}");
}

#[test]
fn vad_sensitivity_out_of_range_is_refused() {
    let err = load(&[("VAD_SENSITIVITY", "7")]).unwrap_err().to_string();
    assert!(err.contains("VAD_SENSITIVITY"), "{err}");
    assert!(err.contains("0 to 3"), "{err}");
    for ok in ["0", "3"] {
        let env = move |n: &str| (n == "VAD_SENSITIVITY").then(|| ok.to_string());
        let c = Config::from_layers(None, &env).unwrap();
        assert_eq!(c.audio.vad_sensitivity.level().to_string(), ok);
    }
}

#[test]
fn file_errors_say_which_file_the_value_came_from() {
    let err = Config::from_layers(
        Some((Path::new("/etc/sb.yaml"), "calls:\n  max_concurrent: 0\n")),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("MAX_CONCURRENT_CALLS"), "{err}");
    assert!(err.contains("/etc/sb.yaml"), "{err}");
}

#[test]
fn choices_are_case_insensitive_and_list_alternatives_when_wrong() {
    let c = load(&[("LLM_PROVIDER", "Ollama")]).unwrap();
    assert_eq!(c.llm.provider, LlmProvider::Ollama);
    let err = load(&[("LLM_PROVIDER", "gpt")]).unwrap_err().to_string();
    assert!(err.contains("embedded, ollama, openai"), "{err}");
}

#[test]
fn postgres_is_chosen_by_host_and_its_password_never_shown() {
    let c = load(&[
        ("POSTGRES_HOST", "db.internal"),
        ("POSTGRES_USER", "sb"),
        ("POSTGRES_PASSWORD", "p@ss word"),
    ])
    .unwrap();
    let DatabaseTarget::Postgres { url } = &c.database.target else {
        panic!("expected PostgreSQL");
    };
    assert!(
        url.expose()
            .starts_with("postgres://sb:p%40ss%20word@db.internal:5432/switchboard"),
        "{}",
        url.expose()
    );
    assert!(!c.database.target.display_url().contains("p%40ss"));
    let shown = format!("{:?}", c.effective());
    assert!(!shown.contains("p@ss"), "{shown}");
    assert!(!format!("{c:?}").contains("p@ss"));
}

#[test]
fn database_url_overrides_and_is_validated() {
    let c = load(&[("DATABASE_URL", "sqlite:///tmp/x.db")]).unwrap();
    assert!(
        matches!(&c.database.target, DatabaseTarget::Sqlite { path } if path == Path::new("/tmp/x.db"))
    );
    let err = load(&[("DATABASE_URL", "mysql://secret@h/db")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        !err.contains("secret"),
        "a secret leaked into an error: {err}"
    );
}

#[test]
fn twilio_needs_its_credentials_and_a_public_url() {
    let err = load(&[("TELEPHONY_PROVIDER", "twilio")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TWILIO_AUTH_TOKEN") && err.contains("PUBLIC_URL"),
        "{err}"
    );
    let c = load(&[
        ("TELEPHONY_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("PUBLIC_URL", "https://sb.example.com"),
    ])
    .unwrap();
    assert_eq!(c.telephony.provider, TelephonyProvider::Twilio);
    let err = load(&[("TWILIO_PHONE_NUMBER", "555-0100")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("E.164"), "{err}");
}

#[test]
fn the_audiosocket_listener_and_the_transfer_target_are_checked() {
    assert_eq!(load(&[]).unwrap().telephony.audiosocket_port, None);
    let asterisk = load(&[("TELEPHONY_PROVIDER", "asterisk")]).unwrap();
    assert_eq!(asterisk.telephony.audiosocket_port, Some(9092));
    let chosen = load(&[("AUDIOSOCKET_PORT", "4573")]).unwrap();
    assert_eq!(chosen.telephony.audiosocket_port, Some(4573));
    let err = load(&[("AUDIOSOCKET_PORT", "70000")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("AUDIOSOCKET_PORT"), "{err}");
    for good in [
        "+14155550100",
        "sip:queue@pbx.example.com",
        "sip:100@10.0.0.5:5060;transport=tcp",
    ] {
        let c = load(Box::leak(Box::new([("TRANSFER_TARGET", good)]))).unwrap();
        assert_eq!(c.telephony.transfer_target.as_deref(), Some(good));
    }
    for bad in [
        "4155550100",
        "sip:",
        "sip:a\"/><Hangup/>",
        "tel:+14155550100",
    ] {
        let err = load(Box::leak(Box::new([("TRANSFER_TARGET", bad)])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRANSFER_TARGET"), "{bad}: {err}");
    }
}

#[test]
fn ari_needs_its_credentials_and_where_asterisk_reaches_our_audiosocket() {
    assert!(load(&[]).unwrap().telephony.ari.is_none());
    let err = load(&[("ARI_URL", "http://asterisk:8088")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ARI_USER"), "{err}");
    let err = load(&[
        ("ARI_URL", "http://asterisk:8088"),
        ("ARI_USER", "sb"),
        ("ARI_PASSWORD", "pw"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("ARI_MEDIA_ADDRESS"), "{err}");
    let c = load(&[
        ("ARI_URL", "http://asterisk:8088"),
        ("ARI_USER", "sb"),
        ("ARI_PASSWORD", "pw"),
        ("ARI_MEDIA_ADDRESS", "10.0.0.7:9092"),
        ("ARI_ENDPOINT", "PJSIP/{number}@trunk"),
    ])
    .unwrap();
    let ari = c.telephony.ari.unwrap();
    assert_eq!(ari.app, "switchboard");
    assert_eq!(ari.endpoint, "PJSIP/{number}@trunk");
    assert_eq!(ari.media_address, "10.0.0.7:9092");
    for (name, bad) in [
        ("ARI_ENDPOINT", "PJSIP/100"),
        ("ARI_MEDIA_ADDRESS", "10.0.0.7"),
        ("ARI_APP", "my app"),
    ] {
        let mut env = vec![
            ("ARI_URL", "http://asterisk:8088"),
            ("ARI_USER", "sb"),
            ("ARI_PASSWORD", "pw"),
            ("ARI_MEDIA_ADDRESS", "10.0.0.7:9092"),
        ];
        env.retain(|(k, _)| *k != name);
        env.push((name, bad));
        let err = load(Box::leak(env.into_boxed_slice()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{name}={bad}: {err}");
    }
}

#[test]
fn effective_lists_every_setting_with_its_source() {
    let c = load(&[("SERVER_PORT", "9000"), ("TWILIO_AUTH_TOKEN", "tok-123")]).unwrap();
    let rows = c.effective();
    assert_eq!(rows.len(), settings::ALL.len());
    let port = rows
        .iter()
        .find(|(s, _, _)| s.env == "SERVER_PORT")
        .unwrap();
    assert_eq!(port.1.as_deref(), Some("9000"));
    assert_eq!(port.2, Some(Source::Env));
    let token = rows
        .iter()
        .find(|(s, _, _)| s.env == "TWILIO_AUTH_TOKEN")
        .unwrap();
    assert_eq!(token.1.as_deref(), Some(REDACTED));
    let models = rows.iter().find(|(s, _, _)| s.env == "MODELS_DIR").unwrap();
    assert!(models.1.is_some(), "derived paths are shown");
}

#[test]
fn the_generated_example_file_is_the_default_configuration() {
    let yaml = example_yaml();
    let from_file =
        Config::from_layers(Some((Path::new("config.example.yaml"), &yaml)), &|_| None).unwrap();
    let defaults = Config::from_layers(None, &|_| None).unwrap();
    for ((s, a, _), (_, b, _)) in from_file.effective().iter().zip(defaults.effective()) {
        assert_eq!(a, &b, "{} differs between example file and defaults", s.key);
    }
}

#[test]
fn shipped_example_files_match_the_settings_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = std::fs::read_to_string(root.join("config.example.yaml")).unwrap();
    let env = std::fs::read_to_string(root.join(".env.example")).unwrap();
    assert!(
        yaml == example_yaml() && env == example_env(),
        "config.example.yaml or .env.example is stale: run `switchboard config example > config.example.yaml` \
         and `switchboard config example --env > .env.example`"
    );
}

#[test]
fn sip_registration_and_trunk_settings_are_read_and_checked() {
    let c = load(&[
        ("TELEPHONY_PROVIDER", "sip"),
        ("SIP_REGISTRAR", "sip:10.0.0.5:5060"),
        ("SIP_USERNAME", "1001"),
        ("SIP_PASSWORD", "s3cret"),
        ("SIP_REGISTER_EXPIRES_S", "120"),
    ])
    .unwrap();
    let sip = c.telephony.sip.as_ref().unwrap();
    assert_eq!(sip.registrar.as_deref(), Some("sip:10.0.0.5:5060"));
    assert_eq!(sip.username, "1001");
    assert_eq!(sip.register_expires, Duration::from_secs(120));
    assert_eq!(sip.ring_timeout, Duration::from_secs(45));
    // Calls go out through the registrar unless a trunk is named.
    assert_eq!(sip.outbound_route(), Some("sip:10.0.0.5:5060"));
    assert!(!format!("{c:?}").contains("s3cret"));
    let c = load(&[
        ("TELEPHONY_PROVIDER", "sip"),
        ("SIP_TRUNK", "sip:pbx.example.com;transport=tcp"),
    ])
    .unwrap();
    let sip = c.telephony.sip.unwrap();
    assert_eq!(sip.registrar, None);
    assert_eq!(sip.username, "switchboard");
    assert_eq!(
        sip.outbound_route(),
        Some("sip:pbx.example.com;transport=tcp")
    );
    for ok in [
        "sip:[::1]",
        "sip:[::1]:5070",
        "sip:trunk@pbx.example.com:5080",
    ] {
        load(Box::leak(
            vec![("TELEPHONY_PROVIDER", "sip"), ("SIP_TRUNK", ok)].into_boxed_slice(),
        ))
        .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (name, bad) in [
        ("SIP_REGISTRAR", "pbx.example.com"),
        ("SIP_REGISTRAR", "sip:pbx.example.com\r\nVia: x"),
        ("SIP_TRUNK", "sip:"),
        ("SIP_TRUNK", "sip:host:0"),
        ("SIP_USERNAME", "a b"),
        ("SIP_REGISTER_EXPIRES_S", "5"),
        ("SIP_RING_TIMEOUT_S", "0"),
    ] {
        let err = load(Box::leak(
            vec![("TELEPHONY_PROVIDER", "sip"), (name, bad)].into_boxed_slice(),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains(name), "{name}={bad:?}: {err}");
    }
}

#[test]
fn who_may_reach_the_telephony_edges_is_read_and_checked() {
    let defaults = load(&[("TELEPHONY_PROVIDER", "sip")]).unwrap();
    let sip = defaults.telephony.sip.as_ref().unwrap();
    assert!(sip.trusted_sources.is_none(), "unset: the edge's default");
    assert!(sip.inbound_auth.is_none());
    assert!(!sip.symmetric_rtp);
    assert!(defaults.telephony.audiosocket_trusted.is_none());
    assert!(defaults.telephony.audiosocket_host.is_none());

    let set = load(&[
        ("TELEPHONY_PROVIDER", "sip"),
        ("SIP_TRUSTED_SOURCES", "10.0.0.0/8, 192.0.2.7"),
        ("SIP_INBOUND_USERNAME", "caller"),
        ("SIP_INBOUND_PASSWORD", "s3cret"),
        ("SIP_SYMMETRIC_RTP", "true"),
        ("AUDIOSOCKET_HOST", "127.0.0.1"),
        ("AUDIOSOCKET_TRUSTED_SOURCES", "none"),
    ])
    .unwrap();
    let sip = set.telephony.sip.as_ref().unwrap();
    let trusted = sip.trusted_sources.as_ref().unwrap();
    assert!(trusted.contains("10.9.8.7".parse().unwrap()));
    assert!(
        !trusted.contains("127.0.0.1".parse().unwrap()),
        "a list replaces the default"
    );
    let auth = sip.inbound_auth.as_ref().unwrap();
    assert_eq!(auth.username, "caller");
    assert_eq!(auth.password.expose(), "s3cret");
    assert!(sip.symmetric_rtp);
    assert_eq!(set.telephony.audiosocket_host.as_deref(), Some("127.0.0.1"));
    assert!(
        set.telephony
            .audiosocket_trusted
            .as_ref()
            .unwrap()
            .is_empty()
    );

    let err = load(&[
        ("TELEPHONY_PROVIDER", "sip"),
        ("SIP_TRUSTED_SOURCES", "pbx.example.com"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("SIP_TRUSTED_SOURCES"), "{err}");
    let err = load(&[
        ("TELEPHONY_PROVIDER", "sip"),
        ("SIP_INBOUND_USERNAME", "caller"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("SIP_INBOUND_PASSWORD"), "{err}");
    // The password is a secret: never printed.
    assert!(!format!("{:?}", set.telephony.sip).contains("s3cret"));
}

#[test]
fn tls_needs_its_certificate_and_key_together_and_defaults_to_version_1_3() {
    assert!(load(&[]).unwrap().server.tls.is_none());
    let tls = load(&[
        ("TLS_CERT_FILE", "/etc/sb/cert.pem"),
        ("TLS_KEY_FILE", "/etc/sb/key.pem"),
    ])
    .unwrap()
    .server
    .tls
    .unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    assert_eq!(tls.key_file, PathBuf::from("/etc/sb/key.pem"));
    let old = load(&[
        ("TLS_CERT_FILE", "c.pem"),
        ("TLS_KEY_FILE", "k.pem"),
        ("TLS_MIN_VERSION", "1.2"),
    ])
    .unwrap();
    assert_eq!(old.server.tls.unwrap().min_version, TlsVersion::V1_2);
    let half = load(&[("TLS_CERT_FILE", "c.pem")]).unwrap_err().to_string();
    assert!(half.contains("TLS_KEY_FILE"), "{half}");
    let bad = load(&[
        ("TLS_CERT_FILE", "c.pem"),
        ("TLS_KEY_FILE", "k.pem"),
        ("TLS_MIN_VERSION", "1.0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(bad.contains("TLS_MIN_VERSION"), "{bad}");
}

#[test]
fn recording_is_off_by_default_and_needs_a_data_key() {
    assert_eq!(load(&[]).unwrap().calls.recording, Recording::Off);
    let err = load(&[("RECORDING", "announce")]).unwrap_err().to_string();
    assert!(err.contains("DATA_KEY_FILE"), "{err}");
    let on = load(&[("RECORDING", "always"), ("DATA_KEY_FILE", "/etc/sb/keys")]).unwrap();
    assert_eq!(on.calls.recording, Recording::Always);
}

#[test]
fn answering_machine_detection_is_off_by_default_and_its_message_is_optional() {
    let config = load(&[]).unwrap();
    assert_eq!(config.calls.amd, crate::config::Amd::Off);
    assert_eq!(config.calls.amd_message, None);
    let on = load(&[
        ("AMD", "leave_message"),
        ("AMD_MESSAGE", "Please call Acme back."),
    ])
    .unwrap();
    assert_eq!(on.calls.amd, crate::config::Amd::LeaveMessage);
    assert_eq!(
        on.calls.amd_message.as_deref(),
        Some("Please call Acme back.")
    );
    let bad = load(&[("AMD", "yes")]).unwrap_err().to_string();
    assert!(
        bad.contains("AMD") && bad.contains("leave_message"),
        "{bad}"
    );
}

#[test]
fn the_spelling_recogniser_is_off_unless_a_model_is_named() {
    assert_eq!(load(&[]).unwrap().stt.spelling_model, None);
    assert_eq!(
        load(&[("WHISPER_SPELLING_MODEL", "None")])
            .unwrap()
            .stt
            .spelling_model,
        None
    );
    assert_eq!(
        load(&[("WHISPER_SPELLING_MODEL", "whisper-base")])
            .unwrap()
            .stt
            .spelling_model,
        Some(SttModel::WhisperBase)
    );
    let err = load(&[("WHISPER_SPELLING_MODEL", "whisper-large")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("WHISPER_SPELLING_MODEL"), "{err}");
}

#[test]
fn redis_sentinels_name_the_master_instead_of_redis_host() {
    let c = load(&[
        (
            "REDIS_SENTINELS",
            "10.0.0.5:26379, sentinel-b:26380,[::1]:26381",
        ),
        ("REDIS_PASSWORD", "pw"),
    ])
    .unwrap();
    let redis = c.redis.expect("Sentinels alone turn Redis on");
    let sentinel = redis.sentinel.expect("the Sentinels");
    assert_eq!(
        sentinel.sentinels,
        vec![
            ("10.0.0.5".to_owned(), 26379),
            ("sentinel-b".to_owned(), 26380),
            ("::1".to_owned(), 26381),
        ]
    );
    assert_eq!(sentinel.master, "mymaster");
    assert!(sentinel.password.is_none());
    assert_eq!(
        redis.password.map(|p| p.expose().to_owned()).as_deref(),
        Some("pw")
    );
    let named = load(&[
        ("REDIS_SENTINELS", "127.0.0.1:26379"),
        ("REDIS_SENTINEL_MASTER", "calls"),
    ])
    .unwrap();
    assert_eq!(named.redis.unwrap().sentinel.unwrap().master, "calls");
    for bad in ["127.0.0.1", "127.0.0.1:0", "host:port", ",", "a b:1"] {
        let env = |name: &str| (name == "REDIS_SENTINELS").then(|| bad.to_owned());
        let err = match Config::from_layers(None, &env) {
            Ok(_) => panic!("{bad:?} was taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("REDIS_SENTINELS"), "{bad:?}: {err}");
    }
    assert!(
        load(&[("REDIS_HOST", "10.0.0.9")])
            .unwrap()
            .redis
            .unwrap()
            .sentinel
            .is_none()
    );
    // Both set: the Sentinels name the master (LiveState connects through them, not to REDIS_HOST).
    let both = load(&[
        ("REDIS_HOST", "10.0.0.9"),
        ("REDIS_SENTINELS", "10.0.0.5:26379"),
    ])
    .unwrap();
    assert!(both.redis.unwrap().sentinel.is_some());
}

#[test]
fn a_read_replica_is_postgresql_beside_a_postgresql_primary() {
    let c = load(&[
        ("DATABASE_URL", "postgres://sb:pw@primary/switchboard"),
        ("DATABASE_READ_URL", "postgres://sb:pw@replica/switchboard"),
    ])
    .unwrap();
    match c.database.read_target {
        Some(DatabaseTarget::Postgres { url }) => {
            assert_eq!(url.expose(), "postgres://sb:pw@replica/switchboard")
        }
        other => panic!("expected the replica, got {other:?}"),
    }
    assert!(load(&[]).unwrap().database.read_target.is_none());
    // Beside SQLite, or not PostgreSQL itself: refused, naming the setting.
    for pairs in [
        &[("DATABASE_READ_URL", "postgres://replica/switchboard")][..],
        &[
            ("DATABASE_URL", "postgres://primary/switchboard"),
            ("DATABASE_READ_URL", "sqlite:/tmp/replica.db"),
        ][..],
    ] {
        let env = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let err = Config::from_layers(None, &env).unwrap_err().to_string();
        assert!(err.contains("DATABASE_READ_URL"), "{err}");
        assert!(
            !err.contains("replica/switchboard"),
            "the URL is a secret: {err}"
        );
    }
}

#[test]
fn postgres_statements_are_limited_to_ten_seconds_unless_told() {
    assert_eq!(
        load(&[]).unwrap().database.statement_timeout,
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        load(&[("DATABASE_STATEMENT_TIMEOUT_MS", "2500")])
            .unwrap()
            .database
            .statement_timeout,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        load(&[("DATABASE_STATEMENT_TIMEOUT_MS", "0")])
            .unwrap()
            .database
            .statement_timeout,
        None
    );
    let err = load(&[("DATABASE_STATEMENT_TIMEOUT_MS", "-1")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DATABASE_STATEMENT_TIMEOUT_MS"), "{err}");
}
