//! Fixed phrases (the greeting, "one moment please", goodbye) synthesised once and kept on disk, keyed by
//! (engine, voice, rate, text), so a call hears them without waiting for synthesis: a lookup is a hash and
//! a memory read, where synthesis takes tens to hundreds of milliseconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{TextToSpeech, TtsError, VoiceInfo};

/// A cached phrase's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Their rate.
    pub sample_rate: u32,
}

/// Where a phrase came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Already in memory.
    Memory,
    /// Read from the cache directory.
    Disk,
    /// Synthesised now (and stored).
    Synthesized,
}

/// The phrase cache of one directory.
#[derive(Debug)]
pub struct PhraseCache {
    dir: PathBuf,
    memory: Mutex<HashMap<String, Arc<Phrase>>>,
}

impl PhraseCache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Self, TtsError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            TtsError::Load(format!(
                "cannot create the phrase cache {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            memory: Mutex::new(HashMap::new()),
        })
    }

    /// The cache key of `text` spoken by `voice`.
    pub fn key(voice: &VoiceInfo, text: &str) -> String {
        let mut hash = Sha256::new();
        for part in [
            voice.engine,
            &voice.voice,
            &format!("{:.3}", voice.rate),
            text.trim(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        hex::encode(&hash.finalize()[..16])
    }

    /// `text` in `tts`'s voice, from memory, disk, or synthesised now and stored for next time.
    pub fn get(
        &self,
        tts: &dyn TextToSpeech,
        text: &str,
    ) -> Result<(Arc<Phrase>, Origin), TtsError> {
        let key = Self::key(tts.info(), text);
        if let Some(phrase) = self.lock().get(&key) {
            return Ok((phrase.clone(), Origin::Memory));
        }
        let path = self.dir.join(format!("{key}.wav"));
        let (phrase, origin) = match read_wav(&path) {
            Ok(phrase) => (phrase, Origin::Disk),
            Err(reason) => {
                if path.exists() {
                    tracing::warn!(path = %path.display(), %reason, "unreadable cached phrase; synthesising it again");
                }
                let samples = tts.synthesize_all(text)?;
                let phrase = Phrase {
                    samples,
                    sample_rate: tts.info().sample_rate,
                };
                if let Err(e) = write_wav_atomically(&path, &phrase) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot store a cached phrase");
                }
                (phrase, Origin::Synthesized)
            }
        };
        let phrase = Arc::new(phrase);
        self.lock().insert(key, phrase.clone());
        Ok((phrase, origin))
    }

    /// `text` in `tts`'s voice if it is already in memory; never synthesises (the live path asks this
    /// for every sentence and synthesises the misses itself, chunk by chunk).
    pub fn cached(&self, tts: &dyn TextToSpeech, text: &str) -> Option<Arc<Phrase>> {
        self.lock().get(&Self::key(tts.info(), text)).cloned()
    }

    /// Makes sure every phrase is cached; returns how many had to be synthesised.
    pub fn warm(&self, tts: &dyn TextToSpeech, phrases: &[&str]) -> Result<usize, TtsError> {
        let mut synthesized = 0;
        for phrase in phrases {
            if self.get(tts, phrase)?.1 == Origin::Synthesized {
                synthesized += 1;
            }
        }
        Ok(synthesized)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Phrase>>> {
        // A panic while holding the map cannot leave it inconsistent (inserts are single operations).
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn read_wav(path: &Path) -> Result<Phrase, String> {
    let reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.sample_format != hound::SampleFormat::Float {
        return Err("not a mono float WAV".into());
    }
    let samples = reader
        .into_samples::<f32>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Phrase {
        samples,
        sample_rate: spec.sample_rate,
    })
}

fn write_wav_atomically(path: &Path, phrase: &Phrase) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: phrase.sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::create(&temporary, spec)?;
        for s in &phrase.samples {
            writer.write_sample(*s)?;
        }
        writer.finalize()
    };
    write().map_err(|e| e.to_string())?;
    std::fs::rename(&temporary, path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::AudioChunk;
    use super::*;

    struct Counting {
        info: VoiceInfo,
        calls: AtomicUsize,
    }

    impl TextToSpeech for Counting {
        fn info(&self) -> &VoiceInfo {
            &self.info
        }
        fn synthesize(
            &self,
            text: &str,
            sink: &mut dyn FnMut(AudioChunk) -> ControlFlow<()>,
        ) -> Result<(), TtsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _ = sink(AudioChunk {
                samples: vec![0.25; text.len()],
                sample_rate: self.info.sample_rate,
                text: text.into(),
                last: true,
            });
            Ok(())
        }
    }

    fn voice(name: &str) -> Counting {
        Counting {
            info: VoiceInfo {
                engine: "test",
                voice: name.into(),
                sample_rate: 16_000,
                rate: 1.0,
            },
            calls: AtomicUsize::new(0),
        }
    }

    #[test]
    fn phrases_are_synthesised_once_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let tts = voice("a");
        let cache = PhraseCache::open(dir.path()).unwrap();
        assert_eq!(
            cache.warm(&tts, &["Hello.", "One moment please."]).unwrap(),
            2
        );
        assert_eq!(cache.get(&tts, "Hello.").unwrap().1, Origin::Memory);
        let reopened = PhraseCache::open(dir.path()).unwrap();
        let (phrase, origin) = reopened.get(&tts, "Hello.").unwrap();
        assert_eq!(origin, Origin::Disk);
        assert_eq!(phrase.samples, vec![0.25; 6]);
        assert_eq!(tts.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_key_depends_on_voice_and_rate() {
        let a = voice("a");
        let mut faster = voice("a");
        faster.info.rate = 1.2;
        let b = voice("b");
        let keys = [&a, &faster, &b].map(|v| PhraseCache::key(&v.info, "Hello."));
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_eq!(PhraseCache::key(&a.info, " Hello. "), keys[0]);
    }

    #[test]
    fn a_corrupt_file_is_synthesised_again() {
        let dir = tempfile::tempdir().unwrap();
        let tts = voice("a");
        let key = PhraseCache::key(&tts.info, "Bye.");
        std::fs::write(dir.path().join(format!("{key}.wav")), b"garbage").unwrap();
        let cache = PhraseCache::open(dir.path()).unwrap();
        assert_eq!(cache.get(&tts, "Bye.").unwrap().1, Origin::Synthesized);
        let again = PhraseCache::open(dir.path()).unwrap();
        assert_eq!(again.get(&tts, "Bye.").unwrap().1, Origin::Disk);
    }
}
