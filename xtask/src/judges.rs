//! Independent judges of Skiff's HTTP, written by nobody here: REDbot
//! ("lint for HTTP") on its responses, and h11 (a separate HTTP/1.1
//! implementation) on its request framing. Both run from the venv that
//! scripts/setup.sh makes at target/judges.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use skiff_net::apps::http::request::{self, Parsed, Status};
use skiff_net::apps::http::target::host_is_valid;

use crate::{Result, root};

/// The venv's Python.
fn python() -> PathBuf {
    root().join("target/judges/bin/python")
}

/// The corpora of Skiff's request parser's fuzz target (each input a cut
/// byte, then what a client sends): the committed seeds, and the working
/// corpus `cargo xtask fuzz` grows (xtask/src/fuzz.rs), where there is one.
pub fn corpus_dirs() -> Vec<PathBuf> {
    let fuzz = root().join("fuzz");
    [seed_corpus(), fuzz.join("target/corpus/http_request")].into_iter().filter(|d| d.is_dir()).collect()
}

/// The committed seeds alone: what the suite judges, so that its verdict
/// does not depend on what a short fuzz run happened to find (a run that
/// finds a new difference is `cargo xtask fuzz`'s to report).
pub fn seed_corpus() -> PathBuf {
    root().join("fuzz/corpus/http_request")
}

/// A parser's verdict on the first request in an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A whole request (head and body) of this many bytes.
    Complete(usize),
    /// Not a whole request yet.
    Incomplete,
    /// Refused (Skiff's status; h11's message).
    Error(String),
}

/// Skiff's verdict on `input`.
pub fn skiff(input: &[u8]) -> Verdict {
    match request::parse(input) {
        Parsed::Request(_, n) => Verdict::Complete(n),
        // An upload is served as it streams, but framed the same: head and Content-Length.
        Parsed::Streamed(_, head, length) => match (head as u64).checked_add(length) {
            Some(total) if input.len() as u64 >= total => Verdict::Complete(total as usize),
            _ => Verdict::Incomplete,
        },
        Parsed::Partial | Parsed::AwaitingBody(_) => Verdict::Incomplete,
        Parsed::Error(status) => Verdict::Error(status.code().to_string()),
    }
}

/// h11's verdicts on `inputs`, in one run of xtask/judges/h11_verdicts.py.
pub fn h11(inputs: &[Vec<u8>]) -> Result<Vec<Verdict>> {
    let hex: Vec<String> = inputs.iter().map(|i| i.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let mut child = Command::new(python())
        .arg(root().join("xtask/judges/h11_verdicts.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} (scripts/setup.sh makes it): {e}", python().display()))?;
    let json = serde_json::to_vec(&hex).map_err(|e| e.to_string())?;
    child.stdin.take().ok_or("no stdin")?.write_all(&json).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("h11_verdicts.py failed ({})", out.status));
    }
    let list: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    list.into_iter()
        .map(|v| match (v.first().and_then(|k| k.as_str()), v.get(1)) {
            (Some("complete"), Some(n)) => n.as_u64().map(|n| Verdict::Complete(n as usize)).ok_or("bad length".into()),
            (Some("incomplete"), _) => Ok(Verdict::Incomplete),
            (Some("error"), m) => Ok(Verdict::Error(m.and_then(|m| m.as_str()).unwrap_or("").into())),
            _ => Err(format!("odd verdict {v:?}")),
        })
        .collect()
}

/// The request-target of `input`'s request line, if it has one.
fn target(input: &[u8]) -> &[u8] {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    line.split(|&b| b == b' ').nth(1).unwrap_or_default()
}

/// The values of the head's fields named `name` (case-insensitive), each
/// line's value with optional whitespace trimmed.
fn fields<'a>(input: &'a [u8], name: &str) -> Vec<&'a [u8]> {
    input
        .split(|&b| b == b'\n')
        .skip(1)
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon].eq_ignore_ascii_case(name.as_bytes()).then(|| line[colon + 1..].trim_ascii())
        })
        .collect()
}

/// Whether `input`'s request line ends in `HTTP/1.2` to `HTTP/1.9`.
fn later_minor(input: &[u8]) -> bool {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() >= 8 && line[line.len() - 8..].starts_with(b"HTTP/1.") && matches!(line.last(), Some(b'2'..=b'9'))
}

/// Why a disagreement is intended, if it is. Skiff refusing what h11 would
/// frame is allowed only for Skiff's own policy, named here; Skiff framing
/// a request differently from h11, or accepting what h11 refuses, never is.
pub fn allowed(input: &[u8], skiff: &Verdict, h11: &Verdict) -> Option<&'static str> {
    let code = |s: Status| Verdict::Error(s.code().to_string());
    let framed_by_h11 = matches!(h11, Verdict::Complete(_) | Verdict::Incomplete);
    match skiff {
        // Chunked request bodies are not implemented (RFC 9112 6.1 lets a
        // server answer 501), and neither are methods beyond GET, HEAD,
        // OPTIONS and RFC 9110's others (501, RFC 9110 9.1); h11 frames both.
        s if *s == code(Status::NotImplemented) && framed_by_h11 => Some("501: chunked bodies, unknown methods"),
        // Skiff's limits: bodies over MAX_BODY (413), heads over MAX_HEAD or
        // with more than MAX_HEADERS fields (431); h11 has none so small.
        s if *s == code(Status::ContentTooLarge) && framed_by_h11 => Some("413: Skiff's body limit"),
        s if *s == code(Status::HeadersTooLarge) => Some("431: Skiff's head limits"),
        // The upload route needs Content-Length (RFC 9110 15.5.12); h11
        // frames a request without one as having no body.
        s if *s == code(Status::LengthRequired) && framed_by_h11 => Some("411: an upload without Content-Length"),
        // Another major version: Skiff says 505 (RFC 9110 15.6.6) where h11
        // may frame it as HTTP/1.
        s if *s == code(Status::VersionNotSupported) => Some("505: a major version other than 1"),
        // Targets Skiff does not serve (authority-form, relative paths, other
        // schemes): 400 by Skiff, framed by h11, which leaves targets to its user.
        s if *s == code(Status::BadRequest) && framed_by_h11 && !target(input).starts_with(b"/") => {
            Some("400: a request-target form Skiff does not serve")
        }
        // RFC 9112 3.2: a Host value no URI could hold MUST get 400; h11
        // does not look inside Host.
        Verdict::Error(_) if fields(input, "host").iter().any(|v| !host_is_valid(v)) => {
            Some("400: an invalid Host value")
        }
        // HTTP/1.2 to 1.9 are read as 1.1 (RFC 9110 2.5), so they need a
        // Host (RFC 9112 3.2); h11 asks Host only of "1.1" itself.
        s if *s == code(Status::BadRequest) && later_minor(input) && fields(input, "host").is_empty() => {
            Some("400: HTTP/1.2+ (read as 1.1) without Host")
        }
        // Connection is tokens, Content-Length digits: Skiff refuses values
        // with bytes beyond ASCII (obs-text), which h11 lets through.
        Verdict::Error(_)
            if ["connection", "content-length"].iter().any(|n| fields(input, n).iter().any(|v| !v.is_ascii())) =>
        {
            Some("400: obs-text in Connection or Content-Length")
        }
        // RFC 9112 5.2: a server MUST either reject a field line folded onto
        // the next (obs-fold: a line starting with SP or HTAB) with 400, or
        // unfold it; Skiff rejects, h11 unfolds.
        Verdict::Error(_) if has_obs_fold(input) => Some("400: obs-fold (a field line continued on the next)"),
        // Skiff refuses as soon as the bytes so far are bad (httparse checks
        // each as it comes) or the head alone condemns the request; h11 waits
        // for the whole head, and for the body.
        Verdict::Error(_) if *h11 == Verdict::Incomplete => Some("refused before the request is whole"),
        // RFC 9112 2.2: a server SHOULD ignore at least one empty line
        // before the request-line. httparse (so Skiff) ignores them; h11
        // takes a blank line for an empty head and refuses it.
        Verdict::Complete(_) | Verdict::Incomplete
            if (input.starts_with(b"\n") || input.starts_with(b"\r")) && matches!(h11, Verdict::Error(_)) =>
        {
            Some("empty lines before the request-line")
        }
        // Content-Length is 1*DIGIT (RFC 9110 8.6): leading zeros are
        // valid. h11 refuses a value of more than 20 digits, its own limit.
        Verdict::Complete(_) | Verdict::Incomplete
            if matches!(h11, Verdict::Error(_))
                && fields(input, "content-length").iter().any(|v| v.len() > H11_CONTENT_LENGTH_DIGITS) =>
        {
            Some("a Content-Length longer than h11's 20 digits")
        }
        // RFC 9110 5.5: a field value with a control character other than
        // HTAB is invalid; a recipient MAY keep it, and Skiff refuses (400)
        // where h11 keeps it.
        s if *s == code(Status::BadRequest) && has_control_in_field(input) => {
            Some("400: a control character in a field")
        }
        _ => None,
    }
}

/// Whether a field line of `input`'s head holds a control character other
/// than HTAB (RFC 5234's CTL: 0x00-0x1F and DEL), its line ending aside.
fn has_control_in_field(input: &[u8]) -> bool {
    input
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .any(|line| line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F))
}

/// The most digits h11 takes in a Content-Length (`CONTENT_LENGTH_MAX_DIGITS`).
const H11_CONTENT_LENGTH_DIGITS: usize = 20;

/// Whether a field line of `input`'s head starts with a space or a tab.
fn has_obs_fold(input: &[u8]) -> bool {
    input
        .split(|&b| b == b'\n')
        .skip(1)
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .any(|line| matches!(line.first(), Some(b' ' | b'\t')))
}

/// Feeds every input in `dirs` (after its cut byte) to Skiff and to h11;
/// returns a summary, or the disagreements no rule allows.
pub fn h11_differential(dirs: &[PathBuf]) -> Result<String> {
    let mut names = Vec::new();
    let mut inputs = Vec::new();
    let mut entries = Vec::new();
    for dir in dirs {
        let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        entries.extend(listing.filter_map(|e| e.ok().map(|e| e.path())));
    }
    entries.sort();
    for path in entries {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // A fuzzer running beside us may have merged the input away
            // since the listing: it is no longer part of the corpus.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let Some((_cut, input)) = bytes.split_first() else { continue };
        names.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        inputs.push(input.to_vec());
    }
    let theirs = h11(&inputs)?;
    let (mut agreed, mut wrong) = (0, Vec::new());
    let mut excused = std::collections::BTreeMap::<&str, usize>::new();
    for ((name, input), h) in names.iter().zip(&inputs).zip(&theirs) {
        let s = skiff(input);
        let same = match (&s, h) {
            (Verdict::Error(_), Verdict::Error(_)) => true,
            _ => s == *h,
        };
        if same {
            agreed += 1;
        } else if let Some(why) = allowed(input, &s, h) {
            *excused.entry(why).or_default() += 1;
        } else {
            wrong.push(format!("{name}: Skiff {s:?}, h11 {h:?}"));
        }
    }
    if !wrong.is_empty() {
        return Err(format!("Skiff and h11 frame differently:\n  {}", wrong.join("\n  ")));
    }
    let excused: Vec<String> = excused.iter().map(|(why, n)| format!("{n} {why}")).collect();
    Ok(format!("{} inputs: {agreed} agree; allowed differences: {}", inputs.len(), excused.join(", ")))
}

/// REDbot notes at these levels fail the check.
const FAILING_LEVELS: [&str; 2] = ["WARN", "BAD"];
/// REDbot notes that may stay, each with why Skiff cannot or should not
/// "fix" it. (Empty means every warning REDbot raised was fixed.)
const REDBOT_ALLOWED: &[(&str, &str)] = &[];
/// How long one REDbot run may take (it makes a few requests of its own).
const REDBOT_SECONDS: &str = "120";

/// Runs REDbot on each of `paths` of the server on 127.0.0.1:`port`;
/// fails with every warning or error it reports that is not allowed.
pub fn redbot(port: u16, paths: &[&str]) -> Result<String> {
    let mut problems = Vec::new();
    let mut notes = 0;
    for path in paths {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = Command::new("timeout")
            .args([REDBOT_SECONDS, &root().join("target/judges/bin/redbot").to_string_lossy(), "-o", "har", &url])
            .output()
            .map_err(|e| format!("cannot run REDbot (scripts/setup.sh installs it): {e}"))?;
        let har: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("REDbot on {url}: no HAR ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)))?;
        let entries = har["log"]["entries"].as_array().ok_or(format!("REDbot on {url}: no entries"))?;
        for entry in entries {
            let status = entry["response"]["status"].as_u64().unwrap_or(0);
            if status != 200 {
                problems.push(format!("{path}: status {status}"));
            }
            for note in entry["_red_messages"].as_array().into_iter().flatten() {
                notes += 1;
                let (id, level) = (note["note_id"].as_str().unwrap_or("?"), note["level"].as_str().unwrap_or("?"));
                if FAILING_LEVELS.contains(&level) && !REDBOT_ALLOWED.iter().any(|(a, _)| *a == id) {
                    problems.push(format!("{path}: {level} {id}: {}", note["summary"].as_str().unwrap_or("")));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(format!("REDbot: {} resources, {notes} notes, no warnings", paths.len()))
    } else {
        Err(format!("REDbot:\n  {}", problems.join("\n  ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiff_verdicts() {
        assert_eq!(skiff(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Complete(27));
        assert_eq!(skiff(b"GET / HTTP/1.1\r\nHost: a\r\n"), Verdict::Incomplete);
        assert_eq!(skiff(b"GET / HTTP/1.1\r\n\r\n"), Verdict::Error("400".into()));
    }

    #[test]
    fn only_policy_differences_are_allowed() {
        let h11_ok = Verdict::Complete(40);
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(allowed(chunked, &Verdict::Error("501".into()), &h11_ok).is_some());
        assert!(allowed(b"GET a:80 HTTP/1.1\r\n", &Verdict::Error("400".into()), &h11_ok).is_some());
        assert!(allowed(b"GET / HTTP/1.5\r\n\r\n", &Verdict::Error("400".into()), &h11_ok).is_some());
        assert!(allowed(b"GET / HTTP/1.5\r\nHost: a\r\n\r\n", &Verdict::Error("400".into()), &h11_ok).is_none());
        // A control character in a field value (seen by the fuzzer): 400 is Skiff's right.
        let ctl = b"GET / HTTP/1.0\r\nCon: nHLTP/21.0\x03\n\r\n";
        assert!(allowed(ctl, &Verdict::Error("400".into()), &h11_ok).is_some());
        assert!(allowed(b"GET / HTTP/1.0\r\nCon: a\tb\r\n\r\n", &Verdict::Error("400".into()), &h11_ok).is_none());
        // Skiff refusing an origin-form request h11 frames, or framing it
        // Found by a fuzz run in a fresh clone: both are RFC-permitted.
        let folded = b"GET / HTTP/1.1\r\nHost: ski\r\nConnection:x\n se\r\n\r\n";
        assert!(allowed(folded, &Verdict::Error("400".into()), &h11_ok).is_some());
        let long = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000000000000016\r\n\r\n";
        assert!(allowed(long, &Verdict::Complete(85), &Verdict::Error("bad Content-Length".into())).is_some());
        let short = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n";
        assert!(allowed(short, &Verdict::Complete(57), &Verdict::Error("bad Content-Length".into())).is_none());
        // otherwise, or accepting what h11 refuses: never.
        assert!(allowed(b"GET / HTTP/1.1\r\n", &Verdict::Error("400".into()), &h11_ok).is_none());
        assert!(allowed(b"GET / HTTP/1.1\r\n", &Verdict::Complete(39), &h11_ok).is_none());
        assert!(allowed(b"GET / HTTP/1.1\r\n", &Verdict::Complete(40), &Verdict::Error("x".into())).is_none());
    }

    /// The suite's step, runnable alone: needs the venv scripts/setup.sh makes.
    #[test]
    #[ignore = "needs target/judges (scripts/setup.sh); the suite runs it as a step"]
    fn h11_agrees_on_the_corpus() {
        let summary = h11_differential(&corpus_dirs()).unwrap_or_else(|e| panic!("{e}"));
        println!("{summary}");
    }
}
