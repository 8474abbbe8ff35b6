//! Writing results to standard output without panicking: a closed pipe (`allatom graph … | head`)
//! ends the output quietly, any other write error (a full disk behind `> /dev/full`) is an
//! error naming standard output.

use std::io::Write;

use anyhow::Result;

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::anyhow!("writing to standard output: {e}")),
    }
}
