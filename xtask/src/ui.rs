//! Progress lines: what is happening, and how long it took.

use std::io::Write;
use std::time::Instant;

/// A long step: prints its name when it starts and its duration when done.
pub struct Step {
    name: String,
    started: Instant,
}

impl Step {
    pub fn start(name: impl Into<String>) -> Step {
        let name = name.into();
        eprintln!("==> {name}");
        let _ = std::io::stderr().flush();
        Step { name, started: Instant::now() }
    }

    pub fn done(self) {
        eprintln!("    {} done in {:.1} s", self.name, self.started.elapsed().as_secs_f64());
    }
}

pub fn error(message: &str) {
    eprintln!("\nerror: {message}");
}
