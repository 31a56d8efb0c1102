//! From `results.json`: the Markdown table with Skiff/Linux ratios
//! (`results.md`, also printed), the SVG plots, and the smoke test's check.

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

use super::bulk::{BULK_LOADS, Direction};
use super::measure::{ECHO_LOADS, HTTP_LOADS};
use super::summary::Summary;
use crate::Result;

const SKIFF_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const LINUX_COLOR: RGBColor = RGBColor(0xe6, 0x7e, 0x22);
const PLOT_SIZE: (u32, u32) = (860, 460);

fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The summary at `pointer`, if complete.
fn at(results: &Value, pointer: &str) -> Option<Summary> {
    results.pointer(pointer).and_then(Summary::from_json)
}

fn number(results: &Value, pointer: &str) -> Option<f64> {
    results.pointer(pointer).and_then(Value::as_f64)
}

/// A figure with as many digits as it deserves.
fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(s: &Option<Summary>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.samples.len() == 1 || s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

fn bytes_cell(v: Option<f64>) -> String {
    v.map_or("—".into(), |b| format!("{:.0}", b))
}

fn ratio(skiff: Option<f64>, linux: Option<f64>) -> String {
    match (skiff, linux) {
        (Some(s), Some(l)) if l != 0.0 => format!("{}×", fmt(s / l)),
        _ => "—".into(),
    }
}

/// One row: metric, Skiff, Linux, ratio of medians, busy-poll Skiff.
struct Row {
    metric: String,
    skiff: String,
    linux: String,
    ratio: String,
    busy: String,
}

fn summary_row(results: &Value, metric: &str, pointer: &str) -> Row {
    let s = at(results, &format!("/guests/skiff{pointer}"));
    let l = at(results, &format!("/guests/linux{pointer}"));
    let busy = at(results, &format!("/guests/skiff_busy_poll{pointer}"));
    Row {
        metric: metric.into(),
        ratio: ratio(s.as_ref().map(|s| s.median), l.as_ref().map(|l| l.median)),
        skiff: cell(&s),
        linux: cell(&l),
        busy: if busy.is_some() { cell(&busy) } else { String::new() },
    }
}

fn value_row(metric: &str, skiff: Option<f64>, linux: Option<f64>) -> Row {
    Row {
        metric: metric.into(),
        skiff: bytes_cell(skiff),
        linux: bytes_cell(linux),
        ratio: ratio(skiff, linux),
        busy: String::new(),
    }
}

fn rows(r: &Value) -> Vec<Row> {
    let mut rows = vec![summary_row(
        r,
        "QEMU start to first HTTP 200 (ms, lower is better; Skiff's ELF and Linux's kernel both with `-kernel`)",
        "/boot_to_first_200_ms",
    )];
    // Skiff on microvm and from its BIOS disk image, against the same Linux boots.
    let linux = at(r, "/guests/linux/boot_to_first_200_ms");
    for (metric, pointer) in [
        ("QEMU start to first HTTP 200, Skiff on microvm (ms; qboot, virtio-mmio)", "skiff_microvm"),
        (
            "QEMU start to first HTTP 200 from Skiff's BIOS disk image (ms; SeaBIOS and the bootloader)",
            "skiff_bios_image",
        ),
    ] {
        let skiff = at(r, &format!("/guests/{pointer}/boot_to_first_200_ms"));
        rows.push(Row {
            metric: metric.into(),
            ratio: ratio(skiff.as_ref().map(|s| s.median), linux.as_ref().map(|l| l.median)),
            skiff: cell(&skiff),
            linux: cell(&linux),
            busy: String::new(),
        });
    }
    let label = |name: &str| -> String {
        HTTP_LOADS.iter().find(|l| l.0 == name).map_or(name.to_string(), |(_, path, clients, mode)| {
            let how = match mode {
                super::load::Connections::KeepAlive => "keep-alive",
                super::load::Connections::PerRequest => "new connection per request",
            };
            format!("GET {path}, {how}, {clients} client{}", if *clients == 1 { "" } else { "s" })
        })
    };
    for (name, ..) in HTTP_LOADS {
        rows.push(summary_row(r, &format!("{}: req/s", label(name)), &format!("/http/{name}/requests_per_s")));
        rows.push(summary_row(r, &format!("{}: p50 latency (µs)", label(name)), &format!("/http/{name}/p50_us")));
        rows.push(summary_row(r, &format!("{}: p99 latency (µs)", label(name)), &format!("/http/{name}/p99_us")));
        let errors = |guest: &str| number(r, &format!("/guests/{guest}/http/{name}/errors"));
        if errors("skiff").unwrap_or(0.0) + errors("linux").unwrap_or(0.0) > 0.0 {
            rows.push(Row {
                ratio: "—".into(),
                ..value_row(
                    &format!("{}: requests refused or failed (all runs)", label(name)),
                    errors("skiff"),
                    errors("linux"),
                )
            });
        }
    }
    for (name, streams) in ECHO_LOADS {
        let what = format!("TCP echo, {streams} stream{} (MiB/s)", if *streams == 1 { "" } else { "s" });
        rows.push(summary_row(r, &what, &format!("/echo/{name}/mib_per_s")));
    }
    for (name, direction) in BULK_LOADS {
        let mib = number(r, &format!("/guests/skiff/bulk/{name}/mib_each")).unwrap_or(0.0);
        let what = match direction {
            Direction::FromGuest => format!("bulk from the guest, GET /bytes/N, {mib:.0} MiB checked (MiB/s)"),
            Direction::ToGuest => format!("bulk to the guest, POST /sink, {mib:.0} MiB (MiB/s)"),
        };
        rows.push(summary_row(r, &what, &format!("/bulk/{name}/mib_per_s")));
    }
    let step = |guest: &str| number(r, &format!("/guests/{guest}/memory_step_mib")).unwrap_or(1.0);
    rows.push(value_row(
        &format!(
            "smallest -m that boots and serves (MiB; Skiff in {:.0} MiB steps, Linux in {:.0})",
            step("skiff"),
            step("linux")
        ),
        number(r, "/guests/skiff/min_memory_mib"),
        number(r, "/guests/linux/min_memory_mib"),
    ));
    rows.push(value_row(
        "kernel (bytes: Skiff's stripped ELF, Linux's vmlinuz)",
        number(r, "/sizes/skiff/kernel"),
        number(r, "/sizes/linux/kernel"),
    ));
    let linux_boot = number(r, "/sizes/linux/kernel").zip(number(r, "/sizes/linux/initramfs")).map(|(a, b)| a + b);
    rows.push(value_row(
        "what boots (bytes: Skiff's stripped ELF, Linux's vmlinuz + initramfs)",
        number(r, "/sizes/skiff/kernel"),
        linux_boot,
    ));
    rows.push(value_row("Skiff's BIOS disk image (bytes)", number(r, "/sizes/skiff/bios_image"), None));
    rows.push(value_row("Skiff's UEFI disk image (bytes)", number(r, "/sizes/skiff/uefi_image"), None));
    rows.push(summary_row(r, "host CPU while idle (% of a core, lower is better)", "/idle_cpu_percent"));
    rows
}

/// The Markdown table, with a line saying how it was measured.
pub fn table(r: &Value) -> String {
    let text = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("?").to_string();
    let load = r.pointer("/host/load_average_before").map_or("?".into(), |v| v.to_string());
    let mut out = format!(
        "Measured {} on {} ({} cores), {} ({}), {}; Linux guest: {}. Load average before the run: {load}. \
         Cells: median (min–max) of {} boots / {} load runs of {} s each.\n\n",
        text("/date"),
        text("/host/cpu"),
        r.pointer("/host/cores").map_or("?".into(), |v| v.to_string()),
        text("/accel").to_uppercase(),
        text("/accel_note"),
        text("/qemu/version"),
        text("/linux_kernel"),
        r.pointer("/settings/boots").map_or("?".into(), |v| v.to_string()),
        r.pointer("/settings/repeats").map_or("?".into(), |v| v.to_string()),
        r.pointer("/settings/load_s").map_or("?".into(), |v| v.to_string()),
    );
    out.push_str("| metric | Skiff | Linux | Skiff/Linux | Skiff, `net.poll=busy` |\n|---|---:|---:|---:|---:|\n");
    for row in rows(r) {
        out.push_str(&format!("| {} | {} | {} | {} | {} |\n", row.metric, row.skiff, row.linux, row.ratio, row.busy));
    }
    if let Some(lossy) = super::lossy::table(r) {
        out.push_str(&lossy);
    }
    for (guest, name) in [("skiff", "Skiff"), ("linux", "Linux")] {
        let stalled = r.pointer(&format!("/guests/{guest}/stalled_boots")).and_then(Value::as_array);
        if let Some(boots) = stalled.filter(|b| !b.is_empty()) {
            let boots: Vec<String> = boots.iter().map(Value::to_string).collect();
            out.push_str(&format!(
                "\n{name} stopped answering during the loads of boot {}: its later runs in that boot count as 0.\n",
                boots.join(", ")
            ));
        }
    }
    out
}

/// Writes `results.md` and the plots next to `results.json`, and prints the table.
pub fn write(dir: &Path) -> Result<()> {
    let results = read(&dir.join("results.json"))?;
    let table = table(&results);
    std::fs::write(dir.join("results.md"), &table).map_err(|e| format!("results.md: {e}"))?;
    println!("\n{table}");
    plots(&results, dir).map_err(|e| format!("plots: {e}"))?;
    eprintln!("    plots: {}/{{throughput,latency,echo}}.svg", dir.display());
    Ok(())
}

/// Bars of one figure: each series has one summary per group (drawn at its
/// median, with a min–max whisker).
struct Series {
    name: String,
    color: RGBColor,
    values: Vec<Option<Summary>>,
}

fn plots(r: &Value, dir: &Path) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let groups: Vec<String> = HTTP_LOADS
        .iter()
        .map(|(_, path, clients, mode)| match mode {
            super::load::Connections::KeepAlive => format!("{path}, keep-alive, {clients}"),
            super::load::Connections::PerRequest => format!("{path}, new conn., {clients}"),
        })
        .collect();
    let series = |guest: &str, field: &str, name: &str, color: RGBColor| Series {
        name: name.into(),
        color,
        values: HTTP_LOADS.iter().map(|(load, ..)| at(r, &format!("/guests/{guest}/http/{load}/{field}"))).collect(),
    };
    // The HTTP figures: file, title, y axis, series.
    let http = [
        (
            "throughput.svg",
            "HTTP requests per second (GET path, connections, clients)",
            "requests/s",
            vec![
                series("skiff", "requests_per_s", "Skiff", SKIFF_COLOR),
                series("linux", "requests_per_s", "Linux", LINUX_COLOR),
            ],
        ),
        (
            "latency.svg",
            "HTTP latency, p50 and p99 (µs)",
            "µs",
            vec![
                series("skiff", "p50_us", "Skiff p50", SKIFF_COLOR),
                series("skiff", "p99_us", "Skiff p99", SKIFF_COLOR.mix(0.5).to_rgba().into_rgb()),
                series("linux", "p50_us", "Linux p50", LINUX_COLOR),
                series("linux", "p99_us", "Linux p99", LINUX_COLOR.mix(0.5).to_rgba().into_rgb()),
            ],
        ),
    ];
    for (file, title, y_label, series) in http {
        bars(&dir.join(file), title, y_label, &groups, &series)?;
    }
    let echo_groups: Vec<String> =
        ECHO_LOADS.iter().map(|(_, n)| format!("{n} stream{}", if *n == 1 { "" } else { "s" })).collect();
    let echo = |guest: &str, name: &str, color| Series {
        name: name.into(),
        color,
        values: ECHO_LOADS.iter().map(|(load, _)| at(r, &format!("/guests/{guest}/echo/{load}/mib_per_s"))).collect(),
    };
    bars(
        &dir.join("echo.svg"),
        "TCP echo throughput (MiB/s)",
        "MiB/s",
        &echo_groups,
        &[echo("skiff", "Skiff", SKIFF_COLOR), echo("linux", "Linux", LINUX_COLOR)],
    )?;
    Ok(())
}

trait IntoRgb {
    fn into_rgb(self) -> RGBColor;
}

impl IntoRgb for RGBAColor {
    /// The colour blended onto white.
    fn into_rgb(self) -> RGBColor {
        let blend = |c: u8| (f64::from(c) * self.3 + 255.0 * (1.0 - self.3)) as u8;
        RGBColor(blend(self.0), blend(self.1), blend(self.2))
    }
}

/// Grouped bars with min–max whiskers and the median written above each.
/// The x axis is segmented for the group labels; the bars are drawn on a
/// secondary, continuous x axis over the same width.
/// Written as SVG to `file`.
fn bars(
    file: &Path,
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Series],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let area = SVGBackend::new(file, PLOT_SIZE).into_drawing_area();
    area.fill(&WHITE)?;
    let top = series.iter().flat_map(|s| s.values.iter().flatten().map(|v| v.max)).fold(0.0, f64::max);
    // Headroom above the tallest bar for its label and the legend.
    let y_max = if top > 0.0 { top * 1.3 } else { 1.0 };
    let n = groups.len();
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0f64..y_max)?
        .set_secondary_coord(0f64..n as f64, 0f64..y_max);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .y_label_formatter(&|v| fmt(*v))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => groups.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    // Each group's width, 80 % of it split among the series.
    let width = 0.8 / series.len() as f64;
    for (k, s) in series.iter().enumerate() {
        let place = |i: usize| 0.1 + i as f64 + k as f64 * width;
        let color = s.color;
        chart
            .draw_secondary_series(s.values.iter().enumerate().filter_map(|(i, v)| {
                v.as_ref()
                    .map(|v| Rectangle::new([(place(i), 0.0), (place(i) + width * 0.9, v.median)], color.filled()))
            }))?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_secondary_series(s.values.iter().enumerate().filter_map(|(i, v)| {
            let x = place(i) + width * 0.45;
            v.as_ref().map(|v| PathElement::new(vec![(x, v.min), (x, v.max)], BLACK.stroke_width(1)))
        }))?;
        chart.draw_secondary_series(s.values.iter().enumerate().filter_map(|(i, v)| {
            let x = place(i) + width * 0.45;
            v.as_ref().map(|v| {
                Text::new(
                    fmt(v.median),
                    (x, v.max + y_max * 0.01),
                    ("sans-serif", 11).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    )),
                )
            })
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}

/// The smoke test's judgement: every figure is there and plausible. Says
/// what it saw.
pub fn check(path: &Path) -> Result<String> {
    let r = read(path)?;
    let stalled = |guest: &str| -> Option<Vec<String>> {
        let boots = r.pointer(&format!("/guests/{guest}/stalled_boots"))?.as_array()?;
        Some(boots.iter().map(Value::to_string).collect())
    };
    // A stall of the Linux baseline is reported but does not fail the smoke
    // test (it was seen once in about a hundred load runs, cause unknown: see
    // docs/performance.md); Skiff's own must never happen.
    let linux_stalled = stalled("linux").unwrap_or_default();
    let mut problems = Vec::new();
    match stalled("skiff") {
        Some(boots) if boots.is_empty() => {}
        Some(boots) => problems.push(format!("Skiff stopped answering during the loads of boot {}", boots.join(", "))),
        None => problems.push("/guests/skiff/stalled_boots is missing".into()),
    }
    let mut need = |pointer: String, ok: &dyn Fn(f64) -> bool, what: &str| match number(&r, &pointer) {
        Some(v) if ok(v) => {}
        Some(v) => problems.push(format!("{pointer} = {v}: {what}")),
        None => problems.push(format!("{pointer} is missing")),
    };
    for guest in ["skiff", "linux"] {
        let g = format!("/guests/{guest}");
        need(format!("{g}/boot_to_first_200_ms/median"), &|v| v > 0.0, "must be positive");
        need(format!("{g}/idle_cpu_percent/median"), &|v| (0.0..=100.0).contains(&v), "must be a share of one core");
        if guest == "linux" && !linux_stalled.is_empty() {
            continue;
        }
        for (name, _, _, mode) in HTTP_LOADS {
            need(format!("{g}/http/{name}/requests_per_s/min"), &|v| v > 0.0, "every run must serve requests");
            need(format!("{g}/http/{name}/p99_us/median"), &|v| v > 0.0, "must be positive");
            // New connections may be refused while every socket is busy;
            // a kept-alive one must never fail.
            if *mode == super::load::Connections::KeepAlive {
                need(format!("{g}/http/{name}/errors"), &|v| v == 0.0, "no keep-alive request may fail");
            }
        }
        for (name, _) in ECHO_LOADS {
            need(format!("{g}/echo/{name}/mib_per_s/min"), &|v| v > 0.0, "every run must move data");
            need(format!("{g}/echo/{name}/errors"), &|v| v == 0.0, "every stream must come back whole");
        }
        for (name, _) in BULK_LOADS {
            need(format!("{g}/bulk/{name}/mib_per_s/min"), &|v| v > 0.0, "every transfer must move data");
            need(format!("{g}/bulk/{name}/errors"), &|v| v == 0.0, "every transfer must be whole and right");
        }
    }
    for guest in ["skiff", "linux"] {
        need(format!("/guests/{guest}/min_memory_mib"), &|v| v > 0.0 && v <= 128.0, "must be found below the default");
        need(format!("/sizes/{guest}/kernel"), &|v| v > 0.0, "must be measured");
    }
    need("/sizes/linux/initramfs".into(), &|v| v > 0.0, "must be measured");
    need("/sizes/skiff/bios_image".into(), &|v| v > 0.0, "must be measured");
    need("/guests/skiff_bios_image/boot_to_first_200_ms/median".into(), &|v| v > 0.0, "must be positive");
    need("/guests/skiff_microvm/boot_to_first_200_ms/median".into(), &|v| v > 0.0, "must be positive");
    let skiff_idle = number(&r, "/guests/skiff/idle_cpu_percent/median").unwrap_or(0.0);
    need(
        "/guests/skiff_busy_poll/idle_cpu_percent/median".into(),
        &|v| v > skiff_idle,
        "busy polling must cost more than halting",
    );
    if !problems.is_empty() {
        return Err(format!("{} incomplete or implausible: {}", path.display(), problems.join("; ")));
    }
    let median = |p: &str| number(&r, &format!("/guests/{p}/median")).unwrap_or(f64::NAN);
    let note = if linux_stalled.is_empty() {
        String::new()
    } else {
        format!(
            " (the Linux guest stopped answering in boot {}: its load figures are incomplete)",
            linux_stalled.join(", ")
        )
    };
    Ok(format!(
        "{}: first 200 after {:.0} ms vs Linux {:.0} ms; keep-alive {:.0} vs {:.0} req/s; echo {:.1} vs {:.1} MiB/s; bulk from/to the guest {:.1}/{:.1} vs {:.1}/{:.1} MiB/s; -m {} vs {} MiB{note}",
        r.pointer("/accel").and_then(Value::as_str).unwrap_or("?").to_uppercase(),
        median("skiff/boot_to_first_200_ms"),
        median("linux/boot_to_first_200_ms"),
        median("skiff/http/keep_alive_1/requests_per_s"),
        median("linux/http/keep_alive_1/requests_per_s"),
        median("skiff/echo/streams_1/mib_per_s"),
        median("linux/echo/streams_1/mib_per_s"),
        median("skiff/bulk/from_guest/mib_per_s"),
        median("skiff/bulk/to_guest/mib_per_s"),
        median("linux/bulk/from_guest/mib_per_s"),
        median("linux/bulk/to_guest/mib_per_s"),
        number(&r, "/guests/skiff/min_memory_mib").unwrap_or(0.0),
        number(&r, "/guests/linux/min_memory_mib").unwrap_or(0.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(v: f64) -> Value {
        Summary::of(&[v]).unwrap().to_json()
    }

    /// A complete, plausible results.json.
    fn results() -> Value {
        let guest = || {
            let http: serde_json::Map<String, Value> = HTTP_LOADS
                .iter()
                .map(|(name, ..)| {
                    let v = json!({"requests_per_s": summary(100.0), "p50_us": summary(50.0), "p99_us": summary(90.0), "errors": 0});
                    (name.to_string(), v)
                })
                .collect();
            let echo: serde_json::Map<String, Value> = ECHO_LOADS
                .iter()
                .map(|(name, _)| (name.to_string(), json!({"mib_per_s": summary(10.0), "errors": 0})))
                .collect();
            let bulk: serde_json::Map<String, Value> = BULK_LOADS
                .iter()
                .map(|(name, _)| (name.to_string(), json!({"mib_per_s": summary(80.0), "errors": 0, "mib_each": 16})))
                .collect();
            json!({
                "boot_to_first_200_ms": summary(900.0), "idle_cpu_percent": summary(0.2), "http": http, "echo": echo,
                "bulk": bulk,
                "min_memory_mib": 21, "memory_step_mib": 1, "stalled_boots": [],
            })
        };
        json!({
            "accel": "tcg",
            "guests": { "skiff": guest(), "linux": guest(), "skiff_busy_poll": { "idle_cpu_percent": summary(99.0) },
                "skiff_bios_image": { "boot_to_first_200_ms": summary(1200.0) },
                "skiff_microvm": { "boot_to_first_200_ms": summary(200.0) } },
            "sizes": { "skiff": { "kernel": 1, "bios_image": 2 }, "linux": { "kernel": 3, "initramfs": 4 } },
        })
    }

    fn check_value(r: &Value) -> Result<String> {
        let dir = std::env::temp_dir().join(format!(
            "skiff-bench-check-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        std::fs::write(&path, r.to_string()).unwrap();
        let result = check(&path);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn complete_results_pass_and_say_what_they_saw() {
        let what = check_value(&results()).unwrap();
        assert!(what.starts_with("TCG: first 200 after 900 ms vs Linux 900 ms"), "{what}");
    }

    #[test]
    fn missing_failed_or_implausible_figures_fail() {
        let mut r = results();
        r["guests"]["skiff"]["http"]["keep_alive_16"]["errors"] = json!(3);
        assert!(check_value(&r).unwrap_err().contains("keep_alive_16/errors"));
        let mut r = results();
        r["guests"]["linux"]["echo"].as_object_mut().unwrap().remove("streams_8");
        assert!(check_value(&r).unwrap_err().contains("streams_8/mib_per_s/min is missing"));
        let mut r = results();
        r["guests"]["skiff_busy_poll"]["idle_cpu_percent"] = summary(0.1);
        assert!(check_value(&r).unwrap_err().contains("busy polling"));
        let mut r = results();
        r["guests"]["skiff"]["stalled_boots"] = json!([2]);
        assert!(check_value(&r).unwrap_err().contains("Skiff stopped answering"));
    }

    #[test]
    fn a_stalled_linux_baseline_is_reported_not_failed() {
        let mut r = results();
        r["guests"]["linux"]["stalled_boots"] = json!([3]);
        r["guests"]["linux"]["http"]["keep_alive_16"]["errors"] = json!(16);
        let what = check_value(&r).unwrap();
        assert!(what.contains("the Linux guest stopped answering in boot 3"), "{what}");
    }

    #[test]
    fn the_table_has_ratios_of_medians() {
        let mut r = results();
        r["guests"]["linux"]["http"]["keep_alive_1"]["requests_per_s"] = summary(50.0);
        let t = table(&r);
        assert!(t.contains("| GET /, keep-alive, 1 client: req/s | 100 | 50.0 | 2.00× |  |"), "{t}");
        assert!(
            t.contains("| host CPU while idle (% of a core, lower is better) | 0.20 | 0.20 | 1.00× | 99.0 |"),
            "{t}"
        );
    }
}
