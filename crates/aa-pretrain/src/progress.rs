//! Progress on stderr for nested work (a comparison's matrix, each run's steps): bars that
//! share one [`indicatif::MultiProgress`] so that they stack instead of overwriting each other,
//! and status lines that print above the bars on a terminal and as plain lines in a log file
//! (where indicatif draws nothing, so [`line`] is what a non-terminal log shows).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// The process's one set of stacked bars.
pub fn bars() -> &'static indicatif::MultiProgress {
    static BARS: OnceLock<indicatif::MultiProgress> = OnceLock::new();
    BARS.get_or_init(indicatif::MultiProgress::new)
}

/// Whether stderr is a terminal (bars are drawn) rather than a file or pipe.
pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A status line on stderr: above the bars on a terminal, a plain line otherwise.
pub fn line(msg: &str) {
    if is_terminal() {
        let _ = bars().println(msg);
    } else {
        eprintln!("{msg}");
    }
}

/// A bar of `len` steps with `template` (indicatif's syntax), stacked under the others.
pub fn bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let b = bars().add(indicatif::ProgressBar::new(len));
    b.set_style(
        indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}
