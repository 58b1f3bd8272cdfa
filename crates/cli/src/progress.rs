//! Progress bars for long steps on a terminal; plain start/finish lines when output is not a terminal.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use switchboard_models::FetchProgress;

/// Draws fetch progress on stderr.
pub(crate) struct CliProgress {
    tty: bool,
    bar: RefCell<Option<ProgressBar>>,
    label: RefCell<String>,
    started: Cell<Option<Instant>>,
    done: Cell<u64>,
}

impl CliProgress {
    pub(crate) fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
            label: RefCell::new(String::new()),
            started: Cell::new(None),
            done: Cell::new(0),
        }
    }
}

impl FetchProgress for CliProgress {
    fn message(&self, line: &str) {
        match &*self.bar.borrow() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn start_bytes(&self, label: &str, total: u64) {
        self.started.set(Some(Instant::now()));
        self.done.set(0);
        *self.label.borrow_mut() = label.to_owned();
        if self.tty {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            *self.bar.borrow_mut() = Some(bar);
        }
    }

    fn set_bytes(&self, done: u64) {
        self.done.set(done);
        if let Some(bar) = &*self.bar.borrow() {
            bar.set_position(done);
        }
    }

    fn finish_bytes(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
        let secs = self
            .started
            .get()
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or_default();
        eprintln!(
            "{}: {:.1} MB in {secs:.1} s",
            self.label.borrow(),
            self.done.get() as f64 / 1e6
        );
    }
}
