//! The packet trace in the docs is checked as a live boot's is: every run
//! of trace lines long enough to tell a story (a whole request, or big
//! frames crossing the ring) must pass the suite's own checks of a boot's
//! output (`learn::trace::check_journey` or `check_offloads`), and every
//! shorter excerpt must be lines of such a run, verbatim. So a line format
//! that changes without the docs, or a sample edited by hand, fails.

use super::{Doc, Problem};
use crate::learn::trace;

/// Trace lines in one fenced block from which a run is checked whole.
const RUN_LINES: usize = 20;
/// What marks a packet trace line.
const MARK: &str = "] TRACE packet: ";

/// The trace lines of each fenced block, with the block's first line (1-based).
fn blocks(doc: &Doc) -> Vec<(usize, Vec<String>)> {
    let fenced = doc.fenced();
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    let mut open = false;
    for (i, line) in doc.lines.iter().enumerate() {
        match &fenced[i] {
            Some(_) => {
                if !open {
                    out.push((i + 1, Vec::new()));
                    open = true;
                }
                if line.contains(MARK)
                    && let Some((_, lines)) = out.last_mut()
                {
                    lines.push(line.trim().to_string());
                }
            }
            None => open = false,
        }
    }
    out.retain(|(_, lines)| !lines.is_empty());
    out
}

pub fn check(doc: &Doc) -> Vec<Problem> {
    let mut problems = Vec::new();
    let blocks = blocks(doc);
    let (runs, excerpts): (Vec<_>, Vec<_>) = blocks.iter().partition(|(_, lines)| lines.len() >= RUN_LINES);
    for (line, lines) in &runs {
        if let (Err(journey), Err(offloads)) = (trace::check_journey(lines), trace::check_offloads(lines)) {
            problems.push(Problem {
                doc: doc.name.clone(),
                line: *line,
                what: format!(
                    "this trace passes neither of the suite's checks of a boot's output: {journey}; {offloads}"
                ),
            });
        }
    }
    for (line, lines) in excerpts {
        for l in lines.iter().filter(|l| !runs.iter().any(|(_, run)| run.contains(l))) {
            problems.push(Problem {
                doc: doc.name.clone(),
                line: *line,
                what: format!("a trace line that is in no whole trace of this page: {l:?}"),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Doc {
        Doc::new("docs/packet-journey.md", text)
    }

    fn fence(lines: &str) -> String {
        format!("```text\n{lines}\n```\n")
    }

    #[test]
    fn whole_traces_must_pass_the_boot_checks_and_excerpts_come_from_them() {
        let journey = trace::tests_journey();
        let offloads = trace::tests_offloads();
        let first = journey.lines().nth(2).unwrap();
        let good = format!("{}text\n{}{}", fence(journey), fence(offloads), fence(first));
        assert_eq!(check(&doc(&good)), []);
        // A whole trace edited by hand: the lengths no longer agree.
        let edited = good.replace("frame 147", "frame 148");
        assert!(check(&doc(&edited))[0].what.contains("passes neither"), "{:?}", check(&doc(&edited)));
        // An excerpt that is not in any whole trace.
        let stray = format!("{}{}", fence(journey), fence(&first.replace("desc 11", "desc 12")));
        assert!(check(&doc(&stray))[0].what.contains("in no whole trace"));
        // The real page.
        let page = std::fs::read_to_string(crate::root().join("docs/packet-journey.md")).unwrap();
        assert_eq!(check(&doc(&page)), []);
    }

    #[test]
    fn the_page_shows_the_checks_own_samples() {
        let page = std::fs::read_to_string(crate::root().join("docs/packet-journey.md")).unwrap();
        for sample in [trace::tests_journey(), trace::tests_offloads()] {
            assert!(page.contains(sample), "docs/packet-journey.md lacks the sample {:.80}...", sample);
        }
    }
}
