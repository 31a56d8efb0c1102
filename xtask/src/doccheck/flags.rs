//! Every `cargo xtask SUBCOMMAND --flag` the docs show exists.

use clap::CommandFactory;

use super::{Doc, Problem};

/// Where a shown command ends.
const ENDS: &[char] = &['`', '#', ';', '|', ')', '&'];

/// The `cargo xtask ...` invocations on `line`: (subcommand, flags).
pub fn invocations(line: &str) -> Vec<(String, Vec<String>)> {
    line.match_indices("cargo xtask ")
        .map(|(at, whole)| {
            let rest = &line[at + whole.len()..];
            let rest = rest.split(ENDS).next().unwrap_or("");
            let mut words = rest.split_whitespace();
            let sub: String =
                words.next().unwrap_or("").chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            let flags = words
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap_or(w).trim_end_matches([',', '.', ':']).to_string())
                .collect();
            (sub, flags)
        })
        .collect()
}

/// Checks `line` against the command-line interface `cli`.
fn check_line(cli: &clap::Command, line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (sub, flags) in invocations(line) {
        // `cargo xtask` alone, or followed by prose (`cargo xtask commands`).
        if sub.is_empty() {
            continue;
        }
        let Some(command) = cli.find_subcommand(&sub) else {
            problems.push(format!("`cargo xtask {sub}`: no such subcommand"));
            continue;
        };
        for flag in flags {
            let name = flag.trim_start_matches('-');
            let known = name == "help" || command.get_arguments().any(|a| a.get_long() == Some(name));
            if !known {
                problems.push(format!("`cargo xtask {sub} {flag}`: no such flag"));
            }
        }
    }
    problems
}

pub fn check(doc: &Doc) -> Vec<Problem> {
    let cli = crate::Cli::command();
    doc.lines
        .iter()
        .enumerate()
        .flat_map(|(i, line)| {
            check_line(&cli, line).into_iter().map(move |what| Problem { doc: doc.name.clone(), line: i + 1, what })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_are_read_up_to_their_end() {
        assert_eq!(
            invocations("`cargo xtask run --trace --cmdline \"log=debug\"` and `cargo xtask qemu --filter=x`"),
            [("run".to_string(), vec!["--trace".into(), "--cmdline".into()]), ("qemu".into(), vec!["--filter".into()])]
        );
        assert_eq!(invocations("cargo xtask fuzz   # every target --x"), [("fuzz".into(), vec![])]);
    }

    #[test]
    fn a_flag_or_subcommand_clap_does_not_know_fails() {
        let cli = crate::Cli::command();
        assert!(check_line(&cli, "cargo xtask run --trace --pcap skiff.pcap --uefi").is_empty());
        assert!(check_line(&cli, "`cargo xtask bench --quick`, `cargo xtask fuzz --seconds 5`").is_empty());
        assert!(check_line(&cli, "`cargo xtask stress`'s rounds; cargo xtask hostile-client").is_empty());
        assert_eq!(check_line(&cli, "cargo xtask run --tracing"), ["`cargo xtask run --tracing`: no such flag"]);
        assert_eq!(check_line(&cli, "cargo xtask qemu --quick"), ["`cargo xtask qemu --quick`: no such flag"]);
        assert_eq!(check_line(&cli, "cargo xtask test"), ["`cargo xtask test`: no such subcommand"]);
    }
}
