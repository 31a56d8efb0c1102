//! Rust code in the docs compiles: each ```` ```rust ```` block is a copy of
//! code the suite builds, named by `<!-- doc-check: from PATH -->` just above
//! the fence, and must appear there line for line (indentation and blank
//! lines aside).

use super::{Doc, Problem, Tree};

/// The marker that names a block's source.
pub const MARKER: &str = "<!-- doc-check: from ";

/// Lines of code compared: trimmed, blank ones dropped.
fn significant(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

pub fn check(doc: &Doc, tree: &dyn Tree) -> Vec<Problem> {
    let mut problems = Vec::new();
    let fence = |j: usize| doc.lines[j].trim_start().starts_with("```");
    let mut i = 0;
    while i < doc.lines.len() {
        let Some(info) = doc.lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let end = (start..doc.lines.len()).find(|&j| fence(j)).unwrap_or(doc.lines.len());
        if info.trim().split([',', ' ']).next() != Some("rust") {
            i = end + 1;
            continue;
        }
        let block: Vec<&str> = doc.lines[start..end].iter().map(String::as_str).collect();
        let mut say = |what: String| problems.push(Problem { doc: doc.name.clone(), line: i + 1, what });
        let source = doc.lines[i.saturating_sub(2)..i]
            .iter()
            .find_map(|l| l.trim().strip_prefix(MARKER)?.strip_suffix("-->").map(|p| p.trim().to_string()));
        match source {
            None => say(format!("a rust block without `{MARKER}PATH -->` above it: nothing checks that it compiles")),
            Some(path) => match tree.read(&path) {
                None => say(format!("the rust block's source `{path}` does not exist")),
                Some(text) => {
                    let want = significant(&block);
                    let have = significant(&text.lines().collect::<Vec<_>>());
                    if want.is_empty() || !have.windows(want.len()).any(|w| w == want.as_slice()) {
                        say(format!("the rust block is not a copy of code in `{path}` (any more)"));
                    }
                }
            },
        }
        i = end + 1;
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fake;
    use super::*;

    const SOURCE: &str = "mod t {\n    fn a() -> R {\n        check!(x);\n\n        Ok(())\n    }\n}\n";

    fn count(doc: &str) -> usize {
        check(&Doc::new("d.md", doc), &Fake::new(&[("kernel/src/ktest.rs", SOURCE)])).len()
    }

    #[test]
    fn a_rust_block_must_be_a_copy_of_compiled_code() {
        let block = "<!-- doc-check: from kernel/src/ktest.rs -->\n   ```rust\n   fn a() -> R {\n       check!(x);\n       Ok(())\n   }\n   ```\n";
        assert_eq!(count(block), 0);
        assert_eq!(count(&block.replace("check!(x)", "check!(y)")), 1, "edited: no longer the code");
        assert_eq!(count(&block.replace("ktest.rs", "gone.rs")), 1, "source gone");
        assert_eq!(count("```rust\nfn a() {}\n```\n"), 1, "unmarked");
        assert_eq!(
            count("```sh\ncargo run\n```\n```text\nfn a() {}\n```\n"),
            0,
            "other languages are not code to compile"
        );
    }
}
