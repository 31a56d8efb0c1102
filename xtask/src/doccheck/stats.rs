//! The `/stats` samples in the docs against what a live guest emits.
//!
//! A whole sample (a code line starting `{"uptime_ms"`) must have exactly the
//! live document's keys, in its order, nested the same way (for arrays, the
//! keys of their first element). A fragment (a code line starting `"key":` or
//! `{"key":` that is not a whole sample) may only use keys the live document
//! has. Every counter of the card and adapter (`/device/...`) must be
//! described, in backticks, in docs/virtio-net.md or docs/network.md.

use serde_json::Value;

use super::{Doc, Problem};

/// The docs that describe the card's and the adapter's counters.
const COUNTER_DOCS: &[&str] = &["docs/virtio-net.md", "docs/network.md"];

/// The key paths of `value`, in document order (`device/rx_frames`,
/// `recent/[]/peer`); arrays contribute their first element's keys. (A
/// `serde_json::Value` sorts its keys, so the order is read from the text.)
pub fn key_paths(text: &str) -> Result<Vec<String>, String> {
    // Check that it is JSON first; the walk below then need not.
    serde_json::from_str::<Value>(text).map_err(|e| format!("not JSON: {e}"))?;
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    walk(&chars, &mut 0, "", &mut out, true);
    Ok(out)
}

/// Walks the value at `*at`, recording object keys under `prefix` when `record`.
fn walk(chars: &[char], at: &mut usize, prefix: &str, out: &mut Vec<String>, record: bool) {
    let skip_space = |at: &mut usize| {
        while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
            *at += 1;
        }
    };
    skip_space(at);
    match chars.get(*at) {
        Some('{') => {
            *at += 1;
            loop {
                skip_space(at);
                match chars.get(*at) {
                    Some('}') | None => break,
                    Some(',') => *at += 1,
                    _ => {
                        let key = string(chars, at);
                        skip_space(at);
                        *at += 1; // ':'
                        let path = format!("{prefix}{key}");
                        if record {
                            out.push(path.clone());
                        }
                        walk(chars, at, &format!("{path}/"), out, record);
                    }
                }
            }
            *at += 1;
        }
        Some('[') => {
            *at += 1;
            let mut first = true;
            loop {
                skip_space(at);
                match chars.get(*at) {
                    Some(']') | None => break,
                    Some(',') => *at += 1,
                    _ => {
                        walk(chars, at, &format!("{prefix}[]/"), out, record && first);
                        first = false;
                    }
                }
            }
            *at += 1;
        }
        Some('"') => {
            string(chars, at);
        }
        _ => {
            while chars.get(*at).is_some_and(|c| !matches!(c, ',' | '}' | ']')) {
                *at += 1;
            }
        }
    }
}

/// The string at `*at` (which is a `"`), moving past it.
fn string(chars: &[char], at: &mut usize) -> String {
    let mut text = String::new();
    *at += 1;
    while let Some(&c) = chars.get(*at) {
        *at += 1;
        match c {
            '"' => break,
            '\\' => {
                text.extend(chars.get(*at));
                *at += 1;
            }
            c => text.push(c),
        }
    }
    text
}

/// Every key name anywhere in `value`.
fn key_names(paths: &[String]) -> Vec<String> {
    paths.iter().map(|p| p.rsplit('/').next().unwrap_or(p).to_string()).collect()
}

/// Differences between a whole sample's keys and the live ones; arrays empty
/// on either side are not compared below their name.
pub fn compare(sample: &[String], live: &[String]) -> Vec<String> {
    // Keep `a/[]/b` only if the other side's array `a` has elements too.
    let comparable = |paths: &[String], other: &[String]| -> Vec<String> {
        paths
            .iter()
            .filter(|p| match p.split_once("/[]/") {
                Some((array, _)) => other.iter().any(|o| o.starts_with(&format!("{array}/[]/"))),
                None => true,
            })
            .cloned()
            .collect()
    };
    let (shown, real) = (comparable(sample, live), comparable(live, sample));
    let mut problems: Vec<String> = Vec::new();
    for missing in real.iter().filter(|k| !shown.contains(k)) {
        problems.push(format!("the sample lacks `{missing}`"));
    }
    for extra in shown.iter().filter(|k| !real.contains(k)) {
        problems.push(format!("the sample has `{extra}`, which /stats no longer emits"));
    }
    let common = |a: &[String], b: &[String]| -> Vec<String> { a.iter().filter(|k| b.contains(k)).cloned().collect() };
    if problems.is_empty() && common(&shown, &real) != common(&real, &shown) {
        problems.push("the sample's keys are in another order than /stats emits them".into());
    }
    problems
}

/// The keys a fragment uses (`"name":`).
fn fragment_keys(line: &str) -> Vec<&str> {
    line.match_indices("\":").filter_map(|(at, _)| line[..at].rsplit('"').next()).collect()
}

/// Checks every `/stats` sample in `docs` against `live`.
pub fn check(docs: &[Doc], live: &str) -> Vec<Problem> {
    let live_paths = match key_paths(live) {
        Ok(paths) => paths,
        Err(e) => return vec![Problem { doc: "/stats".into(), line: 0, what: format!("the live /stats is {e}") }],
    };
    let names = key_names(&live_paths);
    let mut problems = Vec::new();
    for doc in docs {
        let fenced = doc.fenced();
        for (i, line) in doc.lines.iter().enumerate() {
            let text = line.trim();
            if fenced[i].is_none() || !(text.starts_with("{\"") || text.starts_with('"')) || !text.contains("\":") {
                continue;
            }
            let mut say = |what: String| problems.push(Problem { doc: doc.name.clone(), line: i + 1, what });
            if text.starts_with("{\"uptime_ms\"") {
                match key_paths(text) {
                    Ok(sample) => compare(&sample, &live_paths).into_iter().for_each(&mut say),
                    Err(e) => say(format!("the /stats sample is {e}")),
                }
            } else {
                for key in fragment_keys(text).into_iter().filter(|k| !names.iter().any(|n| n == k)) {
                    say(format!("the /stats fragment uses `{key}`, which /stats does not emit"));
                }
            }
        }
    }
    problems.extend(undocumented_counters(docs, &live_paths));
    problems
}

/// `/device` counters that no counter doc describes.
fn undocumented_counters(docs: &[Doc], live: &[String]) -> Vec<Problem> {
    let described: Vec<&str> = docs
        .iter()
        .filter(|d| COUNTER_DOCS.contains(&d.name.as_str()))
        .flat_map(|d| d.lines.iter().flat_map(|l| super::refs::backticked(l)))
        .collect();
    let device: Vec<&str> = live.iter().filter_map(|p| p.strip_prefix("device/")).collect();
    if device.is_empty() {
        return vec![Problem {
            doc: "/stats".into(),
            line: 0,
            what: "the live /stats has no `device` counters".into(),
        }];
    }
    device
        .into_iter()
        .filter(|k| !described.contains(k))
        .map(|k| Problem {
            doc: COUNTER_DOCS[0].into(),
            line: 0,
            what: format!("the counter `device/{k}` in /stats is described in none of {COUNTER_DOCS:?}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = r#"{"uptime_ms":1,"device":{"rx_frames":1,"kicks":2},"recent":[{"app":"http","peer":"x"},{"app":"echo","peer":"y"}],"main_loop":{"mode":"interrupts"}}"#;

    #[test]
    fn key_paths_keep_the_document_order() {
        let paths = key_paths(LIVE).unwrap();
        assert_eq!(
            paths,
            [
                "uptime_ms",
                "device",
                "device/rx_frames",
                "device/kicks",
                "recent",
                "recent/[]/app",
                "recent/[]/peer",
                "main_loop",
                "main_loop/mode"
            ]
        );
        assert!(key_paths(r#"{"a":"q\"x","b":[1,2]}"#).is_ok_and(|p| p == ["a", "b"]));
        assert!(key_paths("{\"a\":").is_err());
    }

    fn docs(sample: &str) -> Vec<Doc> {
        vec![
            Doc::new("README.md", &format!("```\n{sample}\n```\n")),
            Doc::new("docs/virtio-net.md", "| `rx_frames` | `kicks` |"),
        ]
    }

    fn problems(sample: &str) -> Vec<String> {
        check(&docs(sample), LIVE).into_iter().map(|p| p.what).collect()
    }

    #[test]
    fn a_sample_with_the_live_keys_passes() {
        let sample = r#"{"uptime_ms":5,"device":{"rx_frames":0,"kicks":0},"recent":[{"app":"echo","peer":"y"}],"main_loop":{"mode":"busy"}}"#;
        assert!(problems(sample).is_empty(), "{:?}", problems(sample));
        // An empty array is not compared below its name.
        let empty = r#"{"uptime_ms":5,"device":{"rx_frames":0,"kicks":0},"recent":[],"main_loop":{"mode":"busy"}}"#;
        assert!(problems(empty).is_empty());
    }

    #[test]
    fn a_missing_renamed_or_reordered_key_fails() {
        let missing = r#"{"uptime_ms":5,"device":{"rx_frames":0},"recent":[],"main_loop":{"mode":"busy"}}"#;
        assert_eq!(problems(missing), ["the sample lacks `device/kicks`"]);
        let renamed = r#"{"uptime_ms":5,"device":{"rx_frames":0,"kick":0},"recent":[],"main_loop":{"mode":"busy"}}"#;
        assert_eq!(problems(renamed).len(), 2);
        let reordered = r#"{"uptime_ms":5,"device":{"kicks":0,"rx_frames":0},"recent":[],"main_loop":{"mode":"busy"}}"#;
        assert_eq!(problems(reordered), ["the sample's keys are in another order than /stats emits them"]);
    }

    #[test]
    fn fragments_may_only_use_live_keys() {
        assert!(problems(r#""main_loop":{"mode":"interrupts"}"#).is_empty());
        assert_eq!(
            problems(r#""main_loop":{"mode":"interrupts","wakeups":3}"#),
            ["the /stats fragment uses `wakeups`, which /stats does not emit"]
        );
    }

    #[test]
    fn every_counter_must_be_described() {
        let docs = vec![Doc::new("docs/virtio-net.md", "| `rx_frames` |")];
        let found: Vec<String> = check(&docs, LIVE).into_iter().map(|p| p.what).collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("`device/kicks`"), "{found:?}");
    }
}
