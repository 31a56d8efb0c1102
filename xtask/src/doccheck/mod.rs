//! Checks that keep README.md and docs/ true to the code (`cargo xtask qemu`
//! runs them as a host step; the `/stats` sample is compared with a live
//! `/stats` in the `serve-trace` boot).
//!
//! - `refs`: every `path.rs:N` is in a gdb transcript or a panic sample and
//!   names the line it shows (the source line gdb printed, the function of a
//!   backtrace frame, the panic's message); anywhere else a line number is an
//!   error (name the function: it does not drift). Every repository path in
//!   backticks exists, every relative link and its `#anchor` resolves, and
//!   every `Type::function` in backticks is declared somewhere in the sources;
//!   every exercise's **Checked by** names a test function or suite case.
//!   Every row of the spec map (docs/glossary.md) names files that cite its section.
//! - `flags`: every `cargo xtask SUBCOMMAND --flag` shown exists (asked of clap).
//! - `snippets`: every ```` ```rust ```` block is a verbatim copy of code that
//!   the suite compiles, named by a `<!-- doc-check: from PATH -->` line
//!   just above it.
//! - `stats`: the `/stats` samples' keys equal what a live guest emits, and
//!   every card counter is described in docs/virtio-net.md or docs/network.md.
//! - `journey`: every whole packet trace shown passes the checks the suite
//!   runs on a boot's output, and every excerpt is lines of one.

mod flags;
mod journey;
mod refs;
mod snippets;
pub mod stats;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Result, root, ui};

/// A Markdown file, as lines.
pub struct Doc {
    /// Its path from the repository root (`docs/testing.md`).
    pub name: String,
    pub lines: Vec<String>,
}

impl Doc {
    pub fn new(name: &str, text: &str) -> Doc {
        Doc { name: name.to_string(), lines: text.lines().map(str::to_string).collect() }
    }

    /// For each line, whether it is inside a fenced code block (fences excluded)
    /// and the fence's info string.
    pub fn fenced(&self) -> Vec<Option<String>> {
        let mut open: Option<String> = None;
        self.lines
            .iter()
            .map(|line| {
                let trimmed = line.trim_start();
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = match open.take() {
                        Some(_) => None,
                        None => Some(info.trim().to_string()),
                    };
                    None
                } else {
                    open.clone()
                }
            })
            .collect()
    }
}

/// Something a doc says that the code does not bear out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub doc: String,
    /// 1-based.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}: {}", self.doc, self.line, self.what)
    }
}

/// Where the checks look things up: the repository, or (in tests) a fake one.
pub trait Tree {
    /// A file's text, by its path from the root.
    fn read(&self, path: &str) -> Option<String>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &str) -> bool;
    /// Every declared function and type name in the sources.
    fn items(&self) -> &refs::Items;
    /// The same for the crates the workspace depends on (Cargo.lock's
    /// versions, from cargo's registry cache).
    fn dependency_items(&self) -> &refs::Items;
}

/// The repository on disk.
pub struct Repo {
    root: PathBuf,
    items: refs::Items,
    dependencies: std::sync::OnceLock<refs::Items>,
}

/// The source trees indexed for `Type::function` names.
const SOURCE_DIRS: &[&str] = &["kernel", "drivers", "net", "xtask", "fuzz", "boot", "third_party/smoltcp/src"];

impl Repo {
    pub fn open(root: &Path) -> Repo {
        let mut items = refs::Items::default();
        for dir in SOURCE_DIRS {
            for file in rust_files(&root.join(dir)) {
                if let Ok(text) = std::fs::read_to_string(&file) {
                    items.add_source(&text);
                }
            }
        }
        Repo { root: root.to_path_buf(), items, dependencies: std::sync::OnceLock::new() }
    }

    /// Indexes the registry crates named in Cargo.lock (slow: only on a miss).
    fn index_dependencies(&self) -> refs::Items {
        let mut items = refs::Items::default();
        let lock = std::fs::read_to_string(self.root.join("Cargo.lock")).unwrap_or_default();
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        let registries: Vec<PathBuf> = home
            .and_then(|h| std::fs::read_dir(h.join("registry/src")).ok())
            .map(|dirs| dirs.flatten().map(|d| d.path()).collect())
            .unwrap_or_default();
        let mut name = "";
        for line in lock.lines() {
            if let Some(n) = line.strip_prefix("name = ") {
                name = n.trim_matches('"');
            } else if let Some(version) = line.strip_prefix("version = ") {
                let dir = format!("{name}-{}", version.trim_matches('"'));
                for file in registries.iter().flat_map(|r| rust_files(&r.join(&dir).join("src"))) {
                    if let Ok(text) = std::fs::read_to_string(&file) {
                        items.add_source(&text);
                    }
                }
            }
        }
        items
    }
}

impl Tree for Repo {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path)).ok()
    }
    fn exists(&self, path: &str) -> bool {
        self.root.join(path).exists()
    }
    fn items(&self) -> &refs::Items {
        &self.items
    }
    fn dependency_items(&self) -> &refs::Items {
        self.dependencies.get_or_init(|| self.index_dependencies())
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                out.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// README.md and every Markdown file under docs/.
pub fn load_docs(root: &Path) -> Result<Vec<Doc>> {
    let mut names = vec!["README.md".to_string()];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let name = path.strip_prefix(root).map_err(|e| e.to_string())?;
                names.push(name.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join(name)).map_err(|e| format!("cannot read {name}: {e}"))?;
            Ok(Doc::new(name, &text))
        })
        .collect()
}

/// Every check that needs no guest, on `docs` against `tree`.
pub fn check_all(docs: &[Doc], tree: &dyn Tree) -> Vec<Problem> {
    let mut problems = Vec::new();
    for doc in docs {
        problems.extend(refs::check(doc, tree));
        problems.extend(refs::check_links(doc, docs, tree));
        problems.extend(flags::check(doc));
        problems.extend(snippets::check(doc, tree));
        problems.extend(checked_by(doc, tree));
        problems.extend(spec_map(doc, tree));
        problems.extend(journey::check(doc));
    }
    problems
}

/// Whether `text` cites section `section` itself (`4.1` in "4.1 (Virtio Over
/// PCI Bus)", not in "4.1.2").
fn cites(text: &str, section: &str) -> bool {
    text.match_indices(section).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + section.len()..].chars();
        let next = after.next();
        let subsection = next == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit());
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !next.is_some_and(|c| c.is_ascii_digit())
            && !subsection
    })
}

/// A table row that starts with a spec section (`| 2.7.8 | ... |`) maps it
/// to code: every source file the row names must cite that section.
pub fn spec_map(doc: &Doc, tree: &dyn Tree) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, line) in doc.lines.iter().enumerate() {
        let Some(section) = line.strip_prefix("| ").and_then(|r| r.split(" |").next()) else { continue };
        let numeric = section.split('.').count() > 1
            && section.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !numeric {
            continue;
        }
        for path in refs::backticked(line).into_iter().filter(|p| p.ends_with(".rs")) {
            let cited = tree.read(path).is_some_and(|text| cites(&text, section));
            if !cited {
                problems.push(Problem {
                    doc: doc.name.clone(),
                    line: i + 1,
                    what: format!("`{path}` does not cite section {section} (any more)"),
                });
            }
        }
    }
    problems
}

/// An exercise's **Checked by** line names tests (functions) or suite cases
/// that exist, so that its expected result is one a test produces.
pub fn checked_by(doc: &Doc, tree: &dyn Tree) -> Vec<Problem> {
    const LABEL: &str = "**Checked by**";
    let mut problems = Vec::new();
    for (i, line) in doc.lines.iter().enumerate() {
        let Some((_, rest)) = line.split_once(LABEL) else { continue };
        // The names are on this line and its continuation lines (up to the next item).
        let mut text = rest.to_string();
        for more in doc.lines[i + 1..].iter().take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("- ")) {
            text.push(' ');
            text.push_str(more);
        }
        let names: Vec<&str> = refs::backticked(&text);
        if names.is_empty() {
            problems.push(Problem { doc: doc.name.clone(), line: i + 1, what: "names no test".into() });
        }
        for name in names.into_iter().filter(|n| !tree.items().names_a_test(n)) {
            problems.push(Problem {
                doc: doc.name.clone(),
                line: i + 1,
                what: format!("`{name}` is neither a test function nor a suite case"),
            });
        }
    }
    problems
}

/// Lists problems for a person, one a line.
pub fn report(problems: &[Problem]) -> String {
    let mut text = format!("{} statement(s) in the docs disagree with the code:", problems.len());
    for p in problems {
        text.push_str(&format!("\n    {p}"));
    }
    text
}

/// The suite's step; with `stats`, a saved `/stats` to compare the samples with too.
pub fn run(stats: Option<&Path>) -> Result<()> {
    let step = ui::Step::start("doc checks (line references, paths, links, names, xtask flags, code examples)");
    let root = root();
    let docs = load_docs(&root)?;
    let mut problems = check_all(&docs, &Repo::open(&root));
    if let Some(path) = stats {
        let live = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        problems.extend(stats::check(&docs, live.trim()));
    }
    if !problems.is_empty() {
        return Err(report(&problems));
    }
    step.done();
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A repository made of a few files.
    pub struct Fake {
        files: HashMap<String, String>,
        items: refs::Items,
    }

    impl Fake {
        pub fn new(files: &[(&str, &str)]) -> Fake {
            let mut items = refs::Items::default();
            for (_, text) in files {
                items.add_source(text);
            }
            Fake { files: files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect(), items }
        }
    }

    impl Tree for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn exists(&self, path: &str) -> bool {
            let dir = format!("{}/", path.trim_end_matches('/'));
            self.files.contains_key(path) || self.files.keys().any(|k| k.starts_with(&dir))
        }
        fn items(&self) -> &refs::Items {
            &self.items
        }
        fn dependency_items(&self) -> &refs::Items {
            &self.items
        }
    }

    #[test]
    fn an_exercise_must_name_existing_tests() {
        let tree = Fake::new(&[("xtask/src/a.rs", "fn the_test() {}\nconst C: &str = \"exercise-one\";")]);
        let count = |text: &str| checked_by(&Doc::new("docs/exercises.md", text), &tree).len();
        assert_eq!(count("- **Checked by**: `exercise-one`, and\n  `the_test`.\n"), 0);
        assert_eq!(count("- **Checked by**: `exercise-two`.\n"), 1, "a case that does not exist");
        assert_eq!(count("- **Checked by**: `exercise-one`\n  `gone_test`\n"), 1);
        assert_eq!(count("- **Checked by**: the suite.\n"), 1, "names nothing");
    }

    #[test]
    fn a_spec_map_row_must_name_files_that_cite_its_section() {
        let tree = Fake::new(&[("q.rs", "// Spec 2.7.8: the used ring\n// virtio 1.2, 4.1.2 and 4.1 (PCI)")]);
        let count = |text: &str| spec_map(&Doc::new("docs/glossary.md", text), &tree).len();
        assert_eq!(count("| 2.7.8 | used ring | `q.rs` (`pop_used`) |"), 0);
        assert_eq!(count("| 4.1 | PCI | `q.rs` |"), 0);
        assert_eq!(count("| 2.7 | split queues | `q.rs` |"), 1, "only 2.7.8 is cited");
        assert_eq!(count("| 2.7.8 | used ring | `gone.rs` |"), 1);
        assert_eq!(count("| term | text | `gone.rs` |"), 0, "not a spec row");
        assert!(!cites("see 4.1.2", "4.1") && cites("4.1. and", "4.1") && !cites("14.1", "4.1"));
    }

    #[test]
    fn fences_are_tracked() {
        let doc = Doc::new("d.md", "a\n```rust\nfn x() {}\n```\nb");
        assert_eq!(doc.fenced(), [None, None, Some("rust".into()), None, None]);
    }
}
