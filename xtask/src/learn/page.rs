//! The live page (`/`) in headless Chromium: it loads, fills its counters
//! from `/stats`, and updates them; screenshots go under target/learn/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, testnet};

/// Debian's `chromium` package (scripts/setup.sh installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Virtual time the page gets before its DOM is read: its first fetch, then
/// one a second, so about four updates. Chromium's virtual time waits for
/// pending fetches, so a slow guest does not make this flaky.
const VIRTUAL_TIME_MS: u32 = 3500;
/// Screen sizes for the screenshots: a phone, and a laptop.
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 800);

/// Chromium's flags for a quiet, self-contained headless run as root.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"));
    c
}

fn run(mut command: Command) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("cannot run {CHROMIUM}: {e}"))?;
    if !out.status.success() {
        return Err(format!("chromium failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The text of the element with `id` in a dumped DOM (the first text up to `<`).
fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].trim())
}

/// What one load of the page showed.
#[derive(Debug)]
struct Rendered {
    updates: u64,
    uptime: String,
    frames: String,
}

/// Reads the rendered page: every counter filled, at least two updates.
fn rendered(dom: &str) -> Result<Rendered, String> {
    let field = |id: &str| text_of(dom, id).ok_or_else(|| format!("the page has no #{id}"));
    for id in ["addr", "mac", "uptime", "frames", "bytes", "irq", "requests", "conns", "loop", "heap"] {
        let value = field(id)?;
        if value.is_empty() || value == "–" {
            return Err(format!("#{id} was never filled in ({value:?})"));
        }
    }
    if field("link")? != "link up" {
        return Err(format!("the link shows {:?}", field("link")?));
    }
    if !field("addr")?.starts_with(&testnet::guest_cidr()) {
        return Err(format!("the address shows {:?}", field("addr")?));
    }
    if !dom.contains(&format!("<td>http</td><td>{}:", testnet::GATEWAY_IP)) {
        return Err("the recent connections list shows no HTTP connection".into());
    }
    let updates: u64 = field("updates")?.parse().map_err(|_| "#updates is not a number".to_string())?;
    if updates < 2 {
        return Err(format!("the page updated {updates} times in {VIRTUAL_TIME_MS} ms"));
    }
    Ok(Rendered { updates, uptime: field("uptime")?.into(), frames: field("frames")?.into() })
}

/// Loads the page twice and compares; takes screenshots.
pub fn check(port: u16) -> Result<String, String> {
    if !Path::new(CHROMIUM).exists() {
        return Ok(format!("skipped: no {CHROMIUM}"));
    }
    crate::clients::wait_until_serving(port, std::time::Duration::from_secs(60))?;
    let url = format!("http://127.0.0.1:{port}/");
    let dir = root().join("target/learn");
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
    let dump = || {
        let mut c = chromium(&profile);
        c.arg("--dump-dom").arg(&url);
        run(c).and_then(|dom| rendered(&dom))
    };
    let first = dump()?;
    let second = dump()?;
    if first.uptime == second.uptime || first.frames == second.frames {
        return Err(format!("the counters did not change between two loads: {first:?} then {second:?}"));
    }
    let mut shots: Vec<PathBuf> = Vec::new();
    for (name, (w, h)) in [("live-page-phone.png", PHONE), ("live-page-desktop.png", DESKTOP)] {
        let path = dir.join(name);
        let mut c = chromium(&profile);
        c.arg(format!("--window-size={w},{h}")).arg(format!("--screenshot={}", path.display())).arg(&url);
        run(c)?;
        if std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
            return Err(format!("no screenshot at {}", path.display()));
        }
        shots.push(path);
    }
    Ok(format!(
        "Chromium: counters filled and updating ({} then {} updates; uptime {} then {}), screenshots {}",
        first.updates,
        second.updates,
        first.uptime,
        second.uptime,
        shots.iter().map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_page_is_read_and_an_empty_one_rejected() {
        let page = include_str!("../../../net/src/apps/http/index.html");
        assert!(rendered(page).unwrap_err().contains("never filled"));
        let mut dom = page.to_string();
        for (id, value) in [
            ("addr", "10.0.2.15/24 (dhcp)"),
            ("mac", "52:54:00:12:34:56"),
            ("uptime", "3.2 s"),
            ("frames", "10 · 9"),
            ("bytes", "1.2 KiB · 3.4 KiB"),
            ("irq", "4.0"),
            ("requests", "3"),
            ("conns", "1 · 3"),
            ("loop", "interrupts · 99.0%"),
            ("heap", "6.8 MiB"),
            ("updates", "4"),
        ] {
            // Splice `value` in as the element's text.
            let at = dom.find(&format!("id=\"{id}\"")).unwrap();
            let start = at + dom[at..].find('>').unwrap() + 1;
            let end = start + dom[start..].find('<').unwrap();
            dom.replace_range(start..end, value);
        }
        dom = dom.replace("class=\"pill\">…<", "class=\"pill up\">link up<");
        assert!(rendered(&dom).unwrap_err().contains("recent connections"));
        dom.push_str("<tr><td>http</td><td>10.0.2.2:40312</td></tr>");
        let r = rendered(&dom).unwrap();
        assert_eq!((r.updates, r.uptime.as_str()), (4, "3.2 s"));
    }
}
