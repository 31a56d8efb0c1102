//! For learners: the packet trace (`run --trace`), and the suite's checks of
//! what the learner's guide shows — the trace of one request at every layer,
//! the checksums in a capture (`tshark`), the live page (headless Chromium),
//! and the exercises' boots (docs/exercises.md).

pub mod cases;
pub mod exercises;
pub mod page;
pub mod pcap;
pub mod trace;

/// The kernel command line `cmdline` with the packet trace turned on: the
/// `packet` target at `trace` added to its `log=` value, or `log=info,packet=trace`.
pub fn with_trace(cmdline: &str) -> String {
    const DIRECTIVE: &str = "packet=trace";
    let mut words: Vec<String> = cmdline.split_whitespace().map(str::to_string).collect();
    // The kernel takes the last `log=`, so extend that one.
    match words.iter_mut().rev().find(|w| w.starts_with("log=")) {
        Some(log) if log == "log=" => log.push_str(&format!("info,{DIRECTIVE}")),
        Some(log) => log.push_str(&format!(",{DIRECTIVE}")),
        None => words.push(format!("log=info,{DIRECTIVE}")),
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_added_to_the_log_setting() {
        assert_eq!(with_trace(""), "log=info,packet=trace");
        assert_eq!(with_trace("net.dhcp=off"), "net.dhcp=off log=info,packet=trace");
        assert_eq!(with_trace("log=debug net.dhcp=off"), "log=debug,packet=trace net.dhcp=off");
        assert_eq!(with_trace("log=warn log=debug"), "log=warn log=debug,packet=trace");
        assert_eq!(with_trace("log="), "log=info,packet=trace");
    }
}
