//! Line-number references, repository paths, links and item names.

use std::collections::HashSet;

use super::{Doc, Problem, Tree};

/// Names declared in the sources.
#[derive(Default)]
pub struct Items {
    functions: HashSet<String>,
    types: HashSet<String>,
    /// String literals that could name a suite case (`"serve-trace"`).
    names: HashSet<String>,
    /// Functions declared in an `impl` or `trait` block, by type name.
    methods: HashSet<(String, String)>,
}

/// The type an `impl` or `trait` line opens a block for: `impl<T> Tr for
/// a::Type<T> {` and `pub trait RxHalf {` give `Type` and `RxHalf`.
fn block_owner(line: &str) -> Option<String> {
    let text = line.trim_start();
    let rest = if let Some(rest) = text.strip_prefix("impl") {
        let rest = if rest.starts_with('<') { skip_generics(rest) } else { rest };
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        match rest.split_once(" for ") {
            Some((_, target)) => target,
            None => rest,
        }
    } else {
        let mut words = text.split_whitespace().skip_while(|w| *w == "pub" || w.starts_with("pub(") || *w == "unsafe");
        let keyword = words.next().filter(|w| ["trait", "struct"].contains(w))?;
        &text[text.find(&format!("{keyword} "))? + keyword.len() + 1..]
    };
    let path: String =
        rest.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    let name = path.rsplit("::").next().unwrap_or(&path).to_string();
    (!name.is_empty() && line.trim_end().ends_with('{')).then_some(name)
}

/// `text` after its leading `<...>` (nested).
fn skip_generics(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// Words that may come before `fn` / `struct` ... in a declaration.
const QUALIFIERS: &[&str] = &["pub", "const", "unsafe", "async", "extern", "\"C\"", "default", "safe"];
/// Declaration keywords of type-like items (a `Type::function` names one).
const TYPE_KEYWORDS: &[&str] = &["struct", "enum", "trait", "type", "union", "mod"];

/// The item a line declares, as (keyword, name), after any `pub(crate)`,
/// `const`, `unsafe` ... qualifiers.
fn declaration(line: &str) -> Option<(&str, &str)> {
    let mut rest = line.trim_start();
    loop {
        let word = rest.split(|c: char| c.is_whitespace() || c == '(').next()?;
        if !QUALIFIERS.contains(&word) {
            break;
        }
        rest = rest[word.len()..].trim_start();
        // `pub(crate)`, `pub(super)`, `pub(in path)`
        if let Some(after) = rest.strip_prefix('(') {
            rest = after.split_once(')')?.1.trim_start();
        }
    }
    let (keyword, after) = rest.split_once(char::is_whitespace)?;
    let name: String = after.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if name.is_empty() || !(keyword == "fn" || TYPE_KEYWORDS.contains(&keyword)) {
        return None;
    }
    let start = after.trim_start();
    Some((keyword, &start[..name.len()]))
}

impl Items {
    /// Notes every item declared in `text` (a Rust source file).
    pub fn add_source(&mut self, text: &str) {
        for literal in text.split('"').skip(1).step_by(2) {
            if literal.contains('-')
                && literal.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                self.names.insert(literal.to_string());
            }
        }
        // Open `impl`/`trait` blocks: (indent, type).
        let mut blocks: Vec<(usize, String)> = Vec::new();
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            if line.trim() == "}" && blocks.last().is_some_and(|(i, _)| *i == indent) {
                blocks.pop();
                continue;
            }
            if let Some(owner) = block_owner(line) {
                blocks.push((indent, owner));
                continue;
            }
            // A struct's field (`pub name: Type,`) counts as a member too.
            if let (Some((_, owner)), None) = (blocks.last(), declaration(line)) {
                let field = line.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                if let Some((name, _)) = field.split_once(": ")
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    self.methods.insert((owner.clone(), name.to_string()));
                }
            }
            match declaration(line) {
                Some(("fn", name)) => {
                    if let Some((_, owner)) = blocks.last() {
                        self.methods.insert((owner.clone(), name.to_string()));
                    }
                    self.functions.insert(name.to_string())
                }
                Some((_, name)) => self.types.insert(name.to_string()),
                None => false,
            };
        }
    }
}

/// The function whose body holds line `n` (1-based) of `source`: the nearest
/// `fn` declared at or above it.
pub fn enclosing_function(source: &str, n: usize) -> Option<&str> {
    let lines: Vec<&str> = source.lines().collect();
    lines.get(..n.min(lines.len()))?.iter().rev().find_map(|l| match declaration(l) {
        Some(("fn", name)) => Some(name),
        _ => None,
    })
}

impl Items {
    /// Whether `name` is a function or a suite case (a string literal) in the sources.
    pub fn names_a_test(&self, name: &str) -> bool {
        self.functions.contains(name) || self.names.contains(name)
    }
}

/// `path.rs:N` references in `text`: (byte offset, path, line number).
pub fn line_refs(text: &str) -> Vec<(usize, String, usize)> {
    let mut found = Vec::new();
    let path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    for (at, _) in text.match_indices(".rs:") {
        let start = text[..at].rfind(|c: char| !path_char(c)).map_or(0, |i| i + 1);
        let digits: String = text[at + 4..].chars().take_while(char::is_ascii_digit).collect();
        if let (false, Ok(n)) = (start == at, digits.parse()) {
            found.push((start, text[start..at + 3].to_string(), n));
        }
    }
    found
}

/// A function name as gdb prints it, without generic parameters.
fn bare(name: &str) -> &str {
    name.split('<').next().unwrap_or(name).rsplit("::").next().unwrap_or(name)
}

/// Checks the `path.rs:N` references, backticked paths and `Type::function`
/// names of `doc`.
pub fn check(doc: &Doc, tree: &dyn Tree) -> Vec<Problem> {
    let mut problems = Vec::new();
    let fenced = doc.fenced();
    for (i, line) in doc.lines.iter().enumerate() {
        let mut say = |what: String| problems.push(Problem { doc: doc.name.clone(), line: i + 1, what });
        let next = doc.lines.get(i + 1).map_or("", String::as_str);
        for (_, path, n) in line_refs(line) {
            let Some(source) = tree.read(&path) else {
                say(format!("`{path}:{n}`: no such file"));
                continue;
            };
            let Some(at_line) = source.lines().nth(n.saturating_sub(1)) else {
                say(format!("`{path}:{n}`: the file has {} lines", source.lines().count()));
                continue;
            };
            let function = enclosing_function(&source, n).unwrap_or("?");
            if let Some(frame) = gdb_frame_function(line) {
                if bare(frame) != function {
                    say(format!("`{path}:{n}` is in `fn {function}`, the transcript says `{}`", bare(frame)));
                }
            } else if let Some(stop) = gdb_stop_function(line) {
                // gdb's stop: `Breakpoint 2, f () at path:N`, then `N<tab><the line>`.
                match gdb_source_line(next) {
                    Some((shown_n, _)) if shown_n != n => {
                        say(format!("gdb stopped at `{path}:{n}` but the transcript then shows line {shown_n}"))
                    }
                    Some((_, shown)) if at_line.trim() != shown.trim() => {
                        say(format!("`{path}:{n}` is `{}`, the transcript shows `{}`", at_line.trim(), shown.trim()))
                    }
                    Some(_) => {}
                    None if bare(stop) != function => {
                        say(format!("`{path}:{n}` is in `fn {function}`, the transcript says `{}`", bare(stop)))
                    }
                    None => {}
                }
            } else if line.contains("panicked at ") {
                // A panic sample: the message on the next line is the source line's.
                if next.trim().is_empty() || !at_line.contains(next.trim()) {
                    say(format!("`{path}:{n}` is `{}`, which does not panic with {:?}", at_line.trim(), next.trim()));
                }
            } else if !line.contains(": file ") {
                say(format!(
                    "`{path}:{n}`: a line number outside a gdb transcript or a panic sample drifts; \
                     name the function (`{function}` in `{path}`) instead"
                ));
            }
        }
        // gdb's `Breakpoint 2 at 0x...: file path.rs, line N.`
        if let Some((path, n)) = gdb_breakpoint_file(line) {
            match tree.read(&path) {
                Some(source) if source.lines().count() >= n => {}
                _ => say(format!("gdb breakpoint at {path}, line {n}: no such line")),
            }
        }
        if fenced[i].is_none() {
            for span in backticked(line) {
                check_span(span, tree, &mut say);
            }
        }
    }
    problems
}

/// A backticked span in prose: a repository path must exist; a
/// `Type::function` must be declared.
fn check_span(span: &str, tree: &dyn Tree, say: &mut impl FnMut(String)) {
    const TOP: &[&str] =
        &["kernel/", "drivers/", "net/", "xtask/", "fuzz/", "boot/", "docs/", "scripts/", "third_party/"];
    let path = span.split(':').next().unwrap_or(span);
    // `fuzz/corpus/TARGET/`, `crash-…`: a pattern, not a path.
    let placeholder = path.contains(['*', '…', ' '])
        || path
            .split('/')
            .map(|c| c.split('.').next().unwrap_or(c))
            .any(|c| c.len() > 1 && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'));
    if TOP.iter().any(|t| path.starts_with(t)) && !placeholder {
        if !tree.exists(path.trim_end_matches('/')) {
            say(format!("`{span}`: no such file or directory"));
        }
        return;
    }
    let name = span.trim_end_matches("()");
    let parts: Vec<&str> = name.split("::").collect();
    if parts.len() < 2 || !parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_')) {
        return;
    }
    let (owner, item) = (parts[parts.len() - 2], parts[parts.len() - 1]);
    let upper = |s: &str| s.starts_with(|c: char| c.is_ascii_uppercase());
    // `Type::function`: both must be declared (constants and variants are not checked).
    if upper(owner) && item.starts_with(|c: char| c.is_ascii_lowercase()) {
        let key = (owner.to_string(), item.to_string());
        let found = |items: &Items| items.methods.contains(&key);
        if found(tree.items()) || found(tree.dependency_items()) {
            return;
        }
        let items = tree.items();
        if !items.types.contains(owner) && !tree.dependency_items().types.contains(owner) {
            say(format!("`{span}`: no type `{owner}` is declared in the sources"));
        } else if items.functions.contains(item) || tree.dependency_items().functions.contains(item) {
            say(format!("`{span}`: `{owner}` has no function or field `{item}`"));
        } else {
            say(format!("`{span}`: no function `{item}` is declared in the sources"));
        }
    }
}

/// The spans between backticks on a line (inline code).
pub fn backticked(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The function of a gdb stop line (`Breakpoint 2, f<T> () at path:N`).
fn gdb_stop_function(line: &str) -> Option<&str> {
    let before = line.split(" () at ").next().filter(|b| b.len() < line.len())?;
    let name = before.rsplit([' ', ',']).next()?;
    (!name.is_empty()).then_some(name)
}

/// The source line gdb prints after a stop: `N<tab>text` as (N, text).
fn gdb_source_line(next: &str) -> Option<(usize, &str)> {
    let digits = next.chars().take_while(char::is_ascii_digit).count();
    let rest = &next[digits..];
    (digits > 0 && rest.starts_with(['\t', ' '])).then(|| (next[..digits].parse().unwrap_or(0), rest))
}

/// The function of a backtrace frame (`#1  0x... in f<T> () at path:N`).
fn gdb_frame_function(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('#')?;
    let before = rest.split(" () at ").next()?.split(" (").next()?;
    let name = before.rsplit(' ').next()?;
    (!name.is_empty()).then_some(name)
}

/// gdb's `Breakpoint 2 at 0x...: file path, line N.`: (path, N).
fn gdb_breakpoint_file(line: &str) -> Option<(String, usize)> {
    let rest = line.split(": file ").nth(1)?;
    let (path, after) = rest.split_once(", line ")?;
    let n = after.trim_end_matches('.').trim().parse().ok()?;
    Some((path.to_string(), n))
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(doc: &Doc) -> Vec<String> {
    let fenced = doc.fenced();
    doc.lines
        .iter()
        .zip(fenced)
        .filter(|(l, f)| f.is_none() && l.starts_with('#'))
        .map(|(l, _)| slug(l.trim_start_matches('#')))
        .collect()
}

/// Normalises `a/b/../c` to `a/c`.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Every relative Markdown link of `doc` reaches a file, and its `#anchor` a heading there.
pub fn check_links(doc: &Doc, docs: &[Doc], tree: &dyn Tree) -> Vec<Problem> {
    let mut problems = Vec::new();
    let dir = doc.name.rsplit_once('/').map_or("", |(d, _)| d);
    let fenced = doc.fenced();
    for (i, line) in doc.lines.iter().enumerate() {
        if fenced[i].is_some() {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let Some(target) = line[at + 2..].split(')').next() else { continue };
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() { doc.name.clone() } else { normalise(&format!("{dir}/{file}")) };
            let mut say = |what: String| problems.push(Problem { doc: doc.name.clone(), line: i + 1, what });
            if !tree.exists(&path) {
                say(format!("link to `{target}`: no such file"));
            } else if !anchor.is_empty() {
                match docs.iter().find(|d| d.name == path) {
                    Some(target_doc) if anchors(target_doc).iter().any(|a| a == anchor) => {}
                    Some(_) => say(format!("link to `{target}`: no heading `#{anchor}` there")),
                    None => {}
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fake;
    use super::*;

    const STACK: &str = "impl Stack {\n    pub fn poll(&mut self) {\n        let x = 1;\n        self.run();\n    }\n}\nfn other() {}\npub struct Stack;\n";

    #[test]
    fn methods_belong_to_their_impl_or_trait() {
        let mut items = Items::default();
        items.add_source("impl<H: Hal> RxHalf for RxRing<H> {\n    fn receive(&mut self) {}\n}\nfn free() {}\npub trait Dev {\n    fn flush(&mut self);\n}\nimpl a::B<T> {\n    pub(crate) fn go() {}\n}\n");
        let has = |items: &Items, t: &str, f: &str| items.methods.contains(&(t.to_string(), f.to_string()));
        assert!(has(&items, "RxRing", "receive") && has(&items, "Dev", "flush") && has(&items, "B", "go"));
        assert!(!has(&items, "RxRing", "free") && !has(&items, "Dev", "receive"));
        assert_eq!(block_owner("impl fmt::Display for Fired {"), Some("Fired".into()));
        assert_eq!(block_owner("implement {"), None);
        items.add_source("pub struct Config {\n    pub boot_secs: Option<u64>,\n    pub(crate) idle: u8,\n}\n");
        assert!(has(&items, "Config", "boot_secs") && has(&items, "Config", "idle"));
    }

    fn problems(doc: &str, files: &[(&str, &str)]) -> Vec<String> {
        check(&Doc::new("d.md", doc), &Fake::new(files)).iter().map(|p| p.what.clone()).collect()
    }

    #[test]
    fn declarations_are_found_through_qualifiers() {
        assert_eq!(declaration("    pub(crate) const unsafe fn go<T>(x: T)"), Some(("fn", "go")));
        assert_eq!(declaration("pub struct RxHalf<'a> {"), Some(("struct", "RxHalf")));
        assert_eq!(declaration("let f = |x| x; // fn not"), None);
        assert_eq!(enclosing_function(STACK, 4), Some("poll"));
        assert_eq!(enclosing_function(STACK, 7), Some("other"));
    }

    #[test]
    fn a_gdb_stop_must_show_the_line_that_is_there() {
        let good = "Breakpoint 2, poll () at net/src/stack.rs:3\n3\t        let x = 1;\n";
        assert!(problems(good, &[("net/src/stack.rs", STACK)]).is_empty());
        // The code moved: line 3 is something else now.
        let moved = "Breakpoint 2, poll () at net/src/stack.rs:4\n4\t        let x = 1;\n";
        let found = problems(moved, &[("net/src/stack.rs", STACK)]);
        assert!(found[0].contains("is `self.run();`, the transcript shows `let x = 1;`"), "{found:?}");
        let renumbered = "Breakpoint 2, poll () at net/src/stack.rs:4\n3\t        let x = 1;\n";
        let found = problems(renumbered, &[("net/src/stack.rs", STACK)]);
        assert!(found[0].contains("then shows line 3"), "{found:?}");
        // A stop without its source line: the function must still be right.
        let found = problems("Breakpoint 3, other () at net/src/stack.rs:4\n#0 ...", &[("net/src/stack.rs", STACK)]);
        assert!(found[0].contains("is in `fn poll`, the transcript says `other`"), "{found:?}");
    }

    #[test]
    fn a_backtrace_frame_must_be_in_its_function() {
        let good = "#4  poll<VirtioNet<…>> () at net/src/stack.rs:4\n";
        assert!(problems(good, &[("net/src/stack.rs", STACK)]).is_empty());
        let drifted = "#4  0x0000000000240a07 in poll<X> () at net/src/stack.rs:7\n";
        let found = problems(drifted, &[("net/src/stack.rs", STACK)]);
        assert!(found[0].contains("is in `fn other`, the transcript says `poll`"), "{found:?}");
    }

    #[test]
    fn a_line_number_in_prose_is_refused_and_a_missing_file_named() {
        let found = problems("see `net/src/stack.rs:3`", &[("net/src/stack.rs", STACK)]);
        assert!(found[0].contains("name the function (`poll` in `net/src/stack.rs`)"), "{found:?}");
        let found = problems("Breakpoint 1, f () at gone.rs:3\n3\tx", &[]);
        assert_eq!(found, ["`gone.rs:3`: no such file"]);
        let found = problems("#1 poll () at net/src/stack.rs:99", &[("net/src/stack.rs", STACK)]);
        assert_eq!(found, ["`net/src/stack.rs:99`: the file has 8 lines"]);
    }

    #[test]
    fn a_panic_sample_must_name_the_panicking_line() {
        let source = "fn t() {\n    panic!(\"injected panic (x)\")\n}\n";
        let good = "KERNEL PANIC at 3 ms: panicked at kernel/src/ktest.rs:2:5:\ninjected panic (x)\n";
        assert!(problems(good, &[("kernel/src/ktest.rs", source)]).is_empty());
        let bad = "KERNEL PANIC at 3 ms: panicked at kernel/src/ktest.rs:1:5:\ninjected panic (x)\n";
        assert_eq!(problems(bad, &[("kernel/src/ktest.rs", source)]).len(), 1);
    }

    #[test]
    fn backticked_paths_and_names_must_exist() {
        let files = [("net/src/stack.rs", STACK)];
        assert!(problems("`net/src/stack.rs` and `net/src/` and `Stack::poll`", &files).is_empty());
        assert_eq!(problems("`net/src/gone.rs`", &files), ["`net/src/gone.rs`: no such file or directory"]);
        assert!(problems("`fuzz/corpus/TARGET/`, `fuzz/logs/TARGET.log`, `fuzz/crash-…`", &files).is_empty());
        assert_eq!(problems("`Stack::pull`", &files), ["`Stack::pull`: no function `pull` is declared in the sources"]);
        // `other` exists, but not as a method of `Stack`.
        assert_eq!(problems("`Stack::other`", &files), ["`Stack::other`: `Stack` has no function or field `other`"]);
        assert_eq!(problems("`RxRing::poll`", &files), ["`RxRing::poll`: no type `RxRing` is declared in the sources"]);
        // Inside a code block a path is shown, not claimed.
        assert!(problems("```text\n`net/src/gone.rs`\n```", &files).is_empty());
    }

    #[test]
    fn links_and_anchors_must_resolve() {
        let target = Doc::new("docs/b.md", "# B\n## Some `code`, here\n");
        let files = [("docs/b.md", ""), ("README.md", "")];
        let check = |text: &str| {
            let doc = Doc::new("README.md", text);
            let docs = [Doc::new("README.md", text), Doc::new("docs/b.md", &target.lines.join("\n"))];
            check_links(&doc, &docs, &Fake::new(&files)).len()
        };
        assert_eq!(check("[b](docs/b.md) [h](docs/b.md#some-code-here) [x](https://e.org/#z)"), 0);
        assert_eq!(check("[b](docs/c.md)"), 1);
        assert_eq!(check("[h](docs/b.md#gone)"), 1);
        assert_eq!(normalise("docs/../README.md"), "README.md");
    }
}
