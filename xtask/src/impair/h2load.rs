//! Issue 14's third load: nghttp2's `h2load --h1` (Debian's `nghttp2-client`,
//! installed by scripts/setup.sh), keep-alive HTTP/1.1 clients each sending
//! its next request when the answer to the last one is in, run against a
//! guest behind the damaged link.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Issue 14's figures: 8 keep-alive clients, 4,000 requests in all.
pub const CLIENTS: usize = 8;
pub const REQUESTS: usize = 4_000;
/// The whole run's limit: at issue 14's worst (64.6 req/s) 4,000 requests
/// take a minute; twice that, and more, is a hang.
const DEADLINE: Duration = Duration::from_secs(300);
/// How often the run is checked against its deadline.
const POLL: Duration = Duration::from_millis(100);

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Run {
    pub seconds: f64,
    pub requests_per_second: f64,
    pub succeeded: usize,
}

/// `h2load --h1 -c CLIENTS -n REQUESTS http://guest/`; an error unless
/// every request succeeded.
pub fn run(guest: std::net::Ipv4Addr, clients: usize, requests: usize) -> Result<Run, String> {
    let mut child = Command::new("h2load")
        .args(["--h1", "-c", &clients.to_string(), "-n", &requests.to_string()])
        .arg(format!("http://{guest}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run h2load (Debian's nghttp2-client; scripts/setup.sh installs it): {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("h2load did not finish within {DEADLINE:?}"));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(format!("h2load: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("h2load: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let run = parse(&text).ok_or_else(|| format!("h2load said nothing readable: {}", text.trim()))?;
    if run.succeeded != requests {
        return Err(format!("h2load: {} of {requests} requests succeeded: {}", run.succeeded, summary(&text)));
    }
    Ok(run)
}

/// The lines that say what happened.
fn summary(text: &str) -> String {
    text.lines().filter(|l| l.starts_with("finished") || l.starts_with("requests:")).collect::<Vec<_>>().join("; ")
}

/// Reads `finished in 7.93s, 504.35 req/s, ...` and
/// `requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, ...`.
fn parse(text: &str) -> Option<Run> {
    let finished = text.lines().find_map(|l| l.strip_prefix("finished in "))?;
    let mut parts = finished.split(", ");
    let seconds = parse_duration(parts.next()?)?;
    let requests_per_second = parts.next()?.strip_suffix(" req/s")?.parse().ok()?;
    let requests = text.lines().find_map(|l| l.strip_prefix("requests: "))?;
    let succeeded = requests.split(", ").find_map(|p| p.strip_suffix(" succeeded"))?.parse().ok()?;
    Some(Run { seconds, requests_per_second, succeeded })
}

/// h2load prints durations as `7.93s`, `793.12ms` or `120us`.
fn parse_duration(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(us) = text.strip_suffix("us") {
        (us, 1e-6)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "starting benchmark...\nspawning thread #0: 8 total client(s). 4000 total requests\n\
        Application protocol: http/1.1\nprogress: 10% done\n\nfinished in 7.93s, 504.35 req/s, 1.20MB/s\n\
        requests: 4000 total, 4000 started, 4000 done, 3999 succeeded, 1 failed, 1 errored, 0 timeout\n\
        status codes: 3999 2xx, 0 3xx, 0 4xx, 0 5xx\n";

    #[test]
    fn h2load_output_is_read() {
        let run = parse(OUTPUT).unwrap();
        assert_eq!(run, Run { seconds: 7.93, requests_per_second: 504.35, succeeded: 3999 });
        assert_eq!(parse_duration("793.5ms"), Some(0.7935));
        assert!((parse_duration("120us").unwrap() - 0.000_12).abs() < 1e-12);
        assert_eq!(parse("finished in soon"), None);
        assert!(summary(OUTPUT).contains("3999 succeeded"));
    }
}
