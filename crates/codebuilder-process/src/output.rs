//! What the pusher sees, Heroku style, and what the build record keeps: `-----> ` for steps,
//! seven spaces before the lines of the tools we run. Every line is flushed as it is written,
//! so the pusher follows the build as it happens.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;

/// A pusher's terminal kept in memory, for tests of what the pusher reads: an `Output` over
/// it (`Output::new(Box::new(screen.clone()))`) writes there, and `text` reads it back whole.
#[cfg(any(test, feature = "test-support"))]
#[derive(Clone, Default)]
pub struct Screen(std::sync::Arc<Mutex<Vec<u8>>>);

#[cfg(any(test, feature = "test-support"))]
impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Screen {
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

const STEP: &str = "-----> ";
const INDENT: &str = "       ";

pub struct Output {
    inner: Mutex<Sinks>,
}

struct Sinks {
    terminal: Box<dyn Write + Send>,
    log: Option<File>,
}

impl Output {
    /// Writes to standard output (git relays a hook's output to the pusher as `remote: ...`).
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    pub fn new(terminal: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Mutex::new(Sinks {
                terminal,
                log: None,
            }),
        }
    }

    /// From now on, also keep every line in `log`.
    pub fn tee(&self, log: File) {
        self.lock().log = Some(log);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sinks> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, text: &str) {
        let mut sinks = self.lock();
        // The pusher may be gone; the build notices through its cancel signal, not here.
        let _ = writeln!(sinks.terminal, "{text}");
        let _ = sinks.terminal.flush();
        if let Some(log) = sinks.log.as_mut() {
            let _ = writeln!(log, "{text}");
        }
    }

    /// A step: `-----> Building myapp (abc1234) with Dockerfile`.
    pub fn step(&self, message: &str) {
        self.write(&format!("{STEP}{message}"));
    }

    /// A line of a tool's own output, indented under the step.
    pub fn detail(&self, line: &str) {
        self.write(&format!("{INDENT}{line}"));
    }

    /// Something that went wrong without failing the push: ` !     warning: MESSAGE`.
    pub fn warning(&self, message: &str) {
        self.write(&format!(" !     warning: {message}"));
    }

    /// A line of a tool that prints Heroku-style output itself (a buildpack): its `-----> `
    /// headers become steps and its indented lines are not indented twice.
    pub fn heroku_line(&self, line: &str) {
        match line.strip_prefix(STEP) {
            Some(header) => self.step(header),
            None => self.detail(line.strip_prefix(INDENT).unwrap_or(line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heroku_lines_keep_their_own_layout() {
        let captured = Screen::default();
        let output = Output::new(Box::new(captured.clone()));
        for line in [
            "-----> Python app detected",
            "       Installing requirements",
            "plain tool output",
            "  -----> not a header",
        ] {
            output.heroku_line(line);
        }
        let text = captured.text();
        assert_eq!(
            text,
            "-----> Python app detected\n       Installing requirements\n       plain tool output\n         -----> not a header\n"
        );
    }
}
