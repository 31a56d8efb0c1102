//! The damaged-link rows (issue 14): each guest behind the same relay
//! (xtask/src/impair/), with the same seeds, taking turns: 300 sequential
//! `GET /`s a connection each, 4 parallel 4 MiB echo streams byte-checked,
//! a 1 MiB echo, and `h2load --h1` with 8 keep-alive clients and 4,000
//! requests; plus the longest stall of any exchange.
//!
//! The relay and QEMU run in the bench's namespace (this process is already
//! in it), the relay between QEMU's `-netdev dgram` and the TAP device, so
//! the loads reach the guest only through it. With a dgram netdev QEMU
//! offers no checksum offload, and the card is told so too: every flipped
//! bit is a checksum the guest itself must catch.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::guest::{self, Accel, Kind, Media, Running};
use crate::impair::client::{self, Figures};
use crate::impair::{Impairment, Spec, case, h2load, relay};
use crate::qemu::{Backend, Nic};
use crate::{Result, testnet, ui};

/// The seeds: fixed, so that runs compare, and two, so that one lucky or
/// unlucky draw does not make the row. `SKIFF_BENCH_LOSSY_SEEDS=1,2,3`
/// chooses others.
pub const SEEDS: &[u64] = &[14, 1414];

fn seeds() -> Vec<u64> {
    let chosen: Option<Vec<u64>> = std::env::var("SKIFF_BENCH_LOSSY_SEEDS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty());
    chosen.unwrap_or_else(|| SEEDS.to_vec())
}
/// A guest behind the link serves its first 200 within this (a lost SYN
/// costs 1, 3, 7 s).
const BOOT_LIMIT: Duration = Duration::from_secs(120);

/// Rows in the damaged-link table: the key in `results.json`, what it is.
pub const ROWS: &[(&str, &str)] = &[
    ("gets_s", "300 sequential `GET /`, a connection each (s, lower is better)"),
    ("echo_4x4mib_s", "4 parallel 4 MiB echo streams, byte-checked (s, lower is better)"),
    ("echo_1mib_s", "a 1 MiB echo afterwards (s, lower is better)"),
    ("h2load_req_per_s", "`h2load --h1`, 8 keep-alive clients, 4,000 requests (req/s, higher is better)"),
    ("longest_stall_s", "the longest stall of any exchange (s, lower is better; the bar is 2 s)"),
];

/// One guest's run behind the link with `seed`.
fn one(media: &Media, kind: Kind, accel: Accel, imp: Impairment, workdir: &Path) -> Result<Value> {
    let dir = workdir.join(format!("{}-seed-{}", if kind == Kind::Linux { "linux" } else { "skiff" }, imp.seed));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let nic = Nic { backend: Backend::Impaired(imp), offload: false, ..Nic::default() };
    // Skiff's HTTP idle timeout as in the suite's damaged-link cases: longer than any recovery.
    let extra = format!("http.idle_ms={}", case::HTTP_IDLE_MS);
    let args = guest::arguments_with(media, kind, super::measure::MEMORY_MIB, accel, &dir, nic, &extra)?;
    let mut relay = relay::spawn(None, &imp, &dir)?;
    let result = Running::start(&args, &dir.join("console.log")).and_then(|mut vm| {
        vm.wait_serving(BOOT_LIMIT)?;
        let figures = client::measure(client::LONG, None, kind == Kind::Linux)?;
        let h2 = h2load::run(testnet::GUEST_IP, h2load::CLIENTS, h2load::REQUESTS)?;
        Ok((figures, h2))
    });
    let _ = relay.kill();
    let _ = relay.wait();
    let (f, h2) = result.map_err(|e| format!("{kind:?} behind the damaged link, seed {}: {e}", imp.seed))?;
    let relay_report = std::fs::read_to_string(relay::report_path(&dir)).unwrap_or_default();
    Ok(figures_json(&f, &h2, relay_report.trim()))
}

fn figures_json(f: &Figures, h2: &h2load::Run, relay: &str) -> Value {
    json!({
        "gets_s": f.gets.as_secs_f64(),
        "get_handshakes_s": f.get_handshakes.as_secs_f64(),
        "get_latency_ms_bounds": client::LATENCY_BUCKETS_MS,
        "get_latency_histogram": f.get_histogram,
        "echo_4x4mib_s": f.parallel.as_secs_f64(),
        "echo_1mib_s": f.final_echo.as_secs_f64(),
        "h2load_req_per_s": h2.requests_per_second,
        "h2load_s": h2.seconds,
        "longest_stall_s": f.stall.as_secs_f64(),
        "longest_stall_in": f.stall_what,
        "relay": relay,
    })
}

/// Both guests, each seed, side by side: `results.json`'s `lossy`.
pub fn run(media: &Media, accel: Accel, workdir: &Path) -> Result<Value> {
    let spec = Spec::parse(case::ISSUE_14)?;
    let seeds = seeds();
    let step = ui::Step::start(format!(
        "behind the damaged link ({}), seeds {seeds:?}: Skiff, then Linux, per seed",
        case::ISSUE_14
    ));
    let mut runs = Vec::new();
    for seed in seeds {
        let imp = Impairment::both(spec, seed);
        let skiff = one(media, Kind::Skiff, accel, imp, workdir)?;
        eprintln!("      Skiff, seed {seed}: {}", brief(&skiff));
        let linux = one(media, Kind::Linux, accel, imp, workdir)?;
        eprintln!("      Linux, seed {seed}: {}", brief(&linux));
        runs.push(json!({ "seed": seed, "skiff": skiff, "linux": linux }));
    }
    step.done();
    Ok(json!({ "link": case::ISSUE_14, "runs": runs }))
}

fn brief(v: &Value) -> String {
    ROWS.iter()
        .map(|(key, _)| format!("{key} {:.2}", v.get(*key).and_then(Value::as_f64).unwrap_or(f64::NAN)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table of `results.json`'s `lossy`, if there is one: a cell
/// per seed, and the ratio of the sums (of the worst, for the stall).
pub fn table(r: &Value) -> Option<String> {
    let lossy = r.get("lossy")?;
    let runs = lossy.get("runs")?.as_array()?;
    let seeds: Vec<String> = runs.iter().map(|run| run["seed"].to_string()).collect();
    let mut out = format!(
        "\nBoth guests behind the same damaged link ({}, both ways, offload off; relay in xtask/src/impair/), \
         seeds {}: a cell per seed.\n\n| metric | Skiff | Linux | Skiff/Linux |\n|---|---:|---:|---:|\n",
        lossy.get("link").and_then(Value::as_str).unwrap_or("?"),
        seeds.join(", ")
    );
    for (key, label) in ROWS {
        let values =
            |guest: &str| -> Vec<f64> { runs.iter().filter_map(|run| run.get(guest)?.get(*key)?.as_f64()).collect() };
        let (s, l) = (values("skiff"), values("linux"));
        let cell = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ");
        let combine =
            |v: &[f64]| if *key == "longest_stall_s" { v.iter().cloned().fold(0.0, f64::max) } else { v.iter().sum() };
        let ratio = if l.is_empty() || combine(&l) == 0.0 {
            "—".into()
        } else {
            format!("{:.2}×", combine(&s) / combine(&l))
        };
        out.push_str(&format!("| {label} | {} | {} | {ratio} |\n", cell(&s), cell(&l)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_cell_per_seed_and_ratios_of_sums() {
        let guest = |gets: f64, stall: f64| {
            json!({ "gets_s": gets, "echo_4x4mib_s": 1.0, "echo_1mib_s": 0.5, "h2load_req_per_s": 500.0,
                "longest_stall_s": stall })
        };
        let r = json!({ "lossy": { "link": "loss=2%", "runs": [
            { "seed": 1, "skiff": guest(10.0, 0.5), "linux": guest(20.0, 0.25) },
            { "seed": 2, "skiff": guest(20.0, 0.25), "linux": guest(40.0, 1.0) },
        ] } });
        let t = table(&r).unwrap();
        assert!(t.contains("a connection each (s, lower is better) | 10.00 / 20.00 | 20.00 / 40.00 | 0.50× |"), "{t}");
        assert!(t.contains("the bar is 2 s) | 0.50 / 0.25 | 0.25 / 1.00 | 0.50× |"), "{t}");
        assert!(table(&json!({})).is_none());
    }
}
