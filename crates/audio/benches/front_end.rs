//! `cargo bench -p switchboard-audio`: prints the audio benchmark table (see `switchboard_audio::bench`).
#![allow(clippy::print_stdout)]

use switchboard_audio::bench::{BenchInputs, run};
use switchboard_core::Config;

fn main() {
    // `cargo bench` passes harness flags such as `--bench`; this benchmark takes none.
    let config = match Config::load(None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match run(&BenchInputs::from_config(&config)) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
