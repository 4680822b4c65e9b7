//! A progress line for long imports on a terminal (indicatif); nothing when stderr is not
//! a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use roster_shared::stage::Progress;

/// Shows rows read and changes applied as a spinner line.
pub struct Bar {
    bar: ProgressBar,
    rows: AtomicU64,
    changes: AtomicU64,
}

impl Bar {
    /// A bar on stderr, hidden unless stderr is a terminal.
    pub fn new() -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar {
            bar,
            rows: AtomicU64::new(0),
            changes: AtomicU64::new(0),
        }
    }

    fn show(&self) {
        self.bar.set_message(format!(
            "{} rows read, {} changes applied",
            self.rows.load(Ordering::Relaxed),
            self.changes.load(Ordering::Relaxed)
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn rows_read(&self, rows: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.show();
    }

    fn changes_applied(&self, changes: u64) {
        self.changes.fetch_add(changes, Ordering::Relaxed);
        self.show();
    }
}
