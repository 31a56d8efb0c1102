//! `cargo xtask fuzz`: Skiff's cargo-fuzz targets (`fuzz/`), each for a
//! bounded time. `cargo xtask qemu` runs each for `SUITE_SECONDS`; a longer
//! run (`stress`) calls [`run`] with its own bound.
//!
//! The targets build once (`cargo fuzz build`, from `fuzz/` so that its
//! nightly toolchain file applies), then run up to one per core at a time.
//! Each reads its committed seeds (`fuzz/corpus/TARGET`, never written) and a
//! working corpus that libFuzzer grows and later runs start from
//! (`fuzz/target/corpus/TARGET`). A crash leaves its input in
//! `fuzz/artifacts/TARGET/` and fails the run with the command that replays it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Result, build, root, ui};

/// Every fuzz target (`fuzz/fuzz_targets/*.rs`).
pub const TARGETS: [&str; 3] = ["http_request", "virtio_rx", "stack"];
/// Seconds per target in `cargo xtask qemu`: enough to replay the seeds and
/// the saved corpus and explore a little; long runs are for `stress`.
pub const SUITE_SECONDS: u64 = 20;
/// An input that runs this long counts as a hang (libFuzzer's `-timeout`);
/// the slowest seen here take milliseconds.
const INPUT_TIMEOUT_SECS: u64 = 10;
/// Time a target may take beyond its bound (start-up, merging the corpus,
/// the last input) before it is killed as hung.
const GRACE: Duration = Duration::from_secs(120);
/// Longest input per target: the HTTP parser's limits (8 KiB head, 4 KiB
/// body) must be exceeded to reach its overflow rules.
fn max_len(target: &str) -> usize {
    if target == "http_request" { 16 * 1024 } else { 4096 }
}

/// What one target did.
pub struct TargetReport {
    pub target: &'static str,
    /// Inputs run (libFuzzer's `stat::number_of_executed_units`).
    pub executions: u64,
    pub seconds: f64,
    /// Inputs in its working corpus afterwards.
    pub corpus: usize,
}

/// What a fuzz run did.
pub struct Report {
    pub build_seconds: f64,
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// One line for the whole run (each target printed its own as it ended).
    pub fn summary(&self) -> String {
        let runs: u64 = self.targets.iter().map(|t| t.executions).sum();
        let each: Vec<String> = self.targets.iter().map(|t| format!("{} {}", t.target, t.executions)).collect();
        format!(
            "{} fuzz target(s) passed, {runs} inputs run ({}), built in {:.1} s",
            self.targets.len(),
            each.join(", "),
            self.build_seconds
        )
    }
}

impl TargetReport {
    fn print(&self) {
        eprintln!(
            "    PASS fuzz {:<14} {:>10} runs in {:.1} s ({:.0}/s), corpus {} inputs",
            self.target,
            self.executions,
            self.seconds,
            self.executions as f64 / self.seconds.max(0.001),
            self.corpus
        );
    }
}

/// Runs every target for `per_target`; fails on any crash, hang or leak.
pub fn run(per_target: Duration) -> Result<Report> {
    run_targets(&TARGETS, per_target)
}

/// Runs `targets` (names from [`TARGETS`]) for `per_target` each.
pub fn run_targets(targets: &[&str], per_target: Duration) -> Result<Report> {
    let unknown: Vec<&&str> = targets.iter().filter(|t| !TARGETS.contains(t)).collect();
    if !unknown.is_empty() {
        return Err(format!("unknown fuzz target(s) {unknown:?}; the targets are {TARGETS:?}"));
    }
    let targets: Vec<&'static str> = TARGETS.iter().copied().filter(|t| targets.contains(t)).collect();
    let dir = root().join("fuzz");
    let step = ui::Step::start("building the fuzz targets (cargo fuzz build, in fuzz/)");
    let started = Instant::now();
    let status = build::cargo(&dir)
        .args(["fuzz", "build"])
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e} (scripts/setup.sh installs it)"))?;
    if !status.success() {
        return Err("the fuzz targets did not build (see above)".into());
    }
    let build_seconds = started.elapsed().as_secs_f64();
    step.done();

    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(targets.len()).max(1);
    let step = ui::Step::start(format!(
        "fuzzing {} target(s) for {} s each, {workers} at a time",
        targets.len(),
        per_target.as_secs()
    ));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&target) = targets.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let result = run_one(&dir, target, per_target);
                    match &result {
                        Ok(report) => report.print(),
                        Err(e) => eprintln!("    FAIL fuzz {target}: {e}"),
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(result);
                }
            });
        }
    });
    step.done();
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(report) => reports.push(report),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(format!("{} fuzz target(s) failed:\n{}", failures.len(), failures.join("\n")));
    }
    reports.sort_by_key(|r| TARGETS.iter().position(|t| *t == r.target));
    Ok(Report { build_seconds, targets: reports })
}

/// Runs one target for `bound`, its output to `fuzz/target/logs/TARGET.log`.
fn run_one(dir: &Path, target: &'static str, bound: Duration) -> Result<TargetReport> {
    let corpus = dir.join("target/corpus").join(target);
    let seeds = dir.join("corpus").join(target);
    let logs = dir.join("target/logs");
    for d in [&corpus, &logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut args: Vec<String> = vec![
        "fuzz".into(),
        "run".into(),
        target.into(),
        corpus.display().to_string(),
        seeds.display().to_string(),
        "--".into(),
        format!("-max_total_time={}", bound.as_secs().max(1)),
        format!("-timeout={INPUT_TIMEOUT_SECS}"),
        format!("-max_len={}", max_len(target)),
        "-print_final_stats=1".into(),
    ];
    let dict = dir.join("dict").join(format!("{target}.dict"));
    if dict.exists() {
        args.push(format!("-dict={}", dict.display()));
    }
    let started = Instant::now();
    let mut child = build::cargo(dir)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let status = wait(&mut child, bound + GRACE);
    let seconds = started.elapsed().as_secs_f64();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let ok = matches!(status, Some(s) if s.success());
    if !ok {
        let why = match status {
            None => format!("still running {} s past its bound: killed", GRACE.as_secs()),
            Some(s) => format!("exited with {s}"),
        };
        return Err(failure(target, &why, &output, &log_path));
    }
    let executions = executions(&output)
        .ok_or_else(|| format!("{target}: no final stats in {} (did libFuzzer run?)", log_path.display()))?;
    let corpus = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
    Ok(TargetReport { target, executions, seconds, corpus })
}

/// Waits for `child` up to `limit`; kills it after. `None` if it was killed.
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// libFuzzer's count of inputs run, from its final stats.
pub fn executions(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        let rest = line
            .strip_prefix("stat::number_of_executed_units:")
            .or_else(|| line.strip_prefix("stat::number_of_executed_runs:"))?;
        rest.trim().parse().ok()
    })
}

/// Where libFuzzer saved the input that failed (`Test unit written to PATH`).
pub fn artifact(output: &str) -> Option<PathBuf> {
    output.lines().find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| PathBuf::from(p.trim())))
}

/// A failure message: why, the panic or sanitizer report, how to replay it.
fn failure(target: &str, why: &str, output: &str, log: &Path) -> String {
    let report: Vec<&str> = output
        .lines()
        .skip_while(|l| !(l.contains("panicked at") || l.contains("ERROR: ") || l.contains("==ERROR")))
        .take(12)
        .collect();
    let replay = match artifact(output) {
        Some(path) => format!(
            "replay it: cd fuzz && cargo fuzz run {target} {}  (SKIFF_FUZZ_TRACE=1 to trace it)",
            path.display()
        ),
        None => "no input was saved".into(),
    };
    format!("{target}: {why}\n    {}\n    {replay}\n    full output: {}", report.join("\n    "), log.display())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn final_stats_give_the_executions() {
        let out = "#1024\tpulse  cov: 10\nDone 500 runs in 2 second(s)\nstat::number_of_executed_units: 948899\nstat::average_exec_per_sec:     47444\n";
        assert_eq!(executions(out), Some(948_899));
        assert_eq!(executions("stat::number_of_executed_runs: 12\n"), Some(12));
        assert_eq!(executions("INFO: Running with entropic power schedule\n"), None);
    }

    #[test]
    fn the_crashing_input_is_found() {
        let out = "==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='/f/artifacts/stack/'; Test unit written to /f/artifacts/stack/crash-70e9\nBase64: AAEC";
        assert_eq!(artifact(out), Some(PathBuf::from("/f/artifacts/stack/crash-70e9")));
        let message = failure("stack", "exited with 77", out, Path::new("/l"));
        assert!(message.contains("cargo fuzz run stack /f/artifacts/stack/crash-70e9"), "{message}");
        assert!(message.contains("deadly signal"), "{message}");
    }
}
