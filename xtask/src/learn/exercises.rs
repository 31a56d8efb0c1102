//! The boots behind docs/exercises.md: each runs Skiff with one knob of the
//! main loop turned, puts the same load on it (keep-alive requests), and
//! checks that `/stats` moved as the exercise says it will. The other
//! exercises' results come from boots and host tests that already exist;
//! docs/exercises.md names the test behind each, and the doc checks make
//! sure each name exists.

use std::time::Duration;

use serde_json::Value;

use crate::clients;
use crate::qemu::{Boot, Forward, Nic};
use crate::suite::{Case, Expect, free_port};

/// The load each exercise boot gets: the same as `signal_checks` gives the
/// serving boots in interrupt mode, so the numbers compare.
const REQUESTS: usize = 200;
/// Without the race re-check a request can wait for the timer (up to
/// `APP_TICK`, 100 ms, while a connection is open): fewer keep the boot short.
const RACE_REQUESTS: usize = 50;

/// What `/stats` must show after the load, given the documents before and after.
type Judge = fn(&Value, &Value) -> Result<String, String>;

/// A counter of `/stats` (0 if absent).
fn number(json: &Value, path: &str) -> u64 {
    json.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// How much a counter moved under the load.
fn moved(before: &Value, after: &Value, path: &str) -> u64 {
    number(after, path).saturating_sub(number(before, path))
}

fn mode(json: &Value) -> &str {
    json.pointer("/main_loop/mode").and_then(Value::as_str).unwrap_or("?")
}

/// `net.irq=off`: the card raises no interrupt and nothing it does wakes the
/// loop; the local APIC timer wakes it every 5 ms to poll.
fn irq_off(before: &Value, after: &Value) -> Result<String, String> {
    let device = moved(before, after, "/main_loop/wakeups_device");
    let irqs = moved(before, after, "/interrupts/nic_rx") + moved(before, after, "/interrupts/nic_tx");
    let timer = moved(before, after, "/main_loop/wakeups_timer");
    if mode(after) != "timer-poll" || device != 0 || irqs != 0 || timer == 0 {
        return Err(format!(
            "expected timer-poll with no device wake-ups or card interrupts and some timer wake-ups; got mode {}, {device} device wake-ups, {irqs} card interrupts, {timer} timer wake-ups",
            mode(after)
        ));
    }
    Ok(format!("timer-poll: 0 device wake-ups, 0 card interrupts, {timer} timer wake-ups"))
}

/// `net.poll=busy`: the loop never halts, so it never wakes either.
fn busy(before: &Value, after: &Value) -> Result<String, String> {
    let wakeups: u64 = ["wakeups_device", "wakeups_timer", "wakeups_other"]
        .iter()
        .map(|w| moved(before, after, &format!("/main_loop/{w}")))
        .sum();
    let halted = number(after, "/main_loop/halted_permille");
    if mode(after) != "busy" || wakeups != 0 || halted != 0 {
        return Err(format!(
            "expected busy, never halted or woken; got mode {}, {wakeups} wake-ups, halted {halted}‰",
            mode(after)
        ));
    }
    Ok("busy: 0 wake-ups, halted 0‰".into())
}

/// `net.race_check=off`: no sleep is ever skipped for work that raced in;
/// that work waits for the next interrupt or the timer instead.
fn no_race_check(_before: &Value, after: &Value) -> Result<String, String> {
    let raced = number(after, "/main_loop/sleeps_raced");
    if mode(after) != "interrupts" || raced != 0 {
        return Err(format!("expected interrupts and 0 sleeps_raced; got mode {}, {raced}", mode(after)));
    }
    Ok(format!(
        "interrupts, sleeps_raced 0; {} device and {} timer wake-ups",
        number(after, "/main_loop/wakeups_device"),
        number(after, "/main_loop/wakeups_timer")
    ))
}

/// The queue size the tiny-queue exercise asks for.
const TINY_QUEUE: u16 = 8;
/// Its echo stream: many times what 8 buffers hold.
const TINY_QUEUE_ECHO: usize = 1 << 20;

/// `net.queue_size=8`: eight descriptors a queue, as the boot log says;
/// the echo stream still comes back whole, and no frame is dropped for want
/// of a transmit buffer: the adapter offers smoltcp no transmit token while
/// every buffer is with the card, so data waits in the socket instead.
fn tiny_queue(before: &Value, after: &Value) -> Result<String, String> {
    let full = moved(before, after, "/device/tx_queue_full");
    let dropped = number(after, "/device/tx_drop_no_buffer");
    if dropped != 0 || full != 0 {
        return Err(format!("tx_drop_no_buffer {dropped}, tx_queue_full +{full}: frames were refused or dropped"));
    }
    Ok("tx_drop_no_buffer 0, tx_queue_full +0".into())
}

/// The boot log shows the queues the card was given.
fn tiny_queue_log(lines: &[String]) -> Result<String, String> {
    let want = format!("queues rx {TINY_QUEUE} tx {TINY_QUEUE},");
    lines
        .iter()
        .any(|l| l.contains(&want))
        .then(|| format!("the boot log says {want:?}"))
        .ok_or_else(|| format!("no {want:?} in the boot log"))
}

/// `/stats`, parsed.
fn stats(port: u16) -> Result<Value, String> {
    let text = clients::curl(&format!("http://127.0.0.1:{port}/stats"))?;
    serde_json::from_str(&text).map_err(|e| format!("/stats is not JSON: {e}"))
}

/// Serves `requests` keep-alive requests and judges `/stats`.
fn run(port: u16, requests: usize, judge: Judge) -> Result<String, String> {
    clients::wait_until_serving(port, Duration::from_secs(60))?;
    let before = stats(port)?;
    let rate = clients::keep_alive(port, requests)?;
    let after = stats(port)?;
    let verdict = judge(&before, &after)?;
    Ok(format!("{requests} keep-alive requests at {rate:.0} req/s; {verdict}"))
}

fn case(name: &'static str, cmdline: &str, requests: usize, judge: Judge, timeout: Duration) -> Case {
    let port = free_port();
    Case {
        name,
        boot: Boot {
            cmdline: cmdline.into(),
            nic: Some(Nic { forwards: vec![Forward::http(port)], ..Nic::default() }),
            ..Boot::default()
        },
        expect: Expect::Serves,
        timeout,
        client: Some(Box::new(move |_| run(port, requests, judge))),
    }
}

/// The tiny-queue boot: the keep-alive load, then an echo stream.
fn tiny_queue_case(timeout: Duration) -> Case {
    let (http, echo) = (free_port(), free_port());
    Case {
        name: "exercise-tiny-queue",
        boot: Boot {
            cmdline: format!("net.queue_size={TINY_QUEUE}"),
            nic: Some(Nic { forwards: vec![Forward::http(http), Forward::echo(echo)], ..Nic::default() }),
            ..Boot::default()
        },
        expect: Expect::ServesPrinting(tiny_queue_log),
        timeout,
        client: Some(Box::new(move |_| {
            clients::wait_until_serving(http, Duration::from_secs(60))?;
            let before = stats(http)?;
            let rate = clients::keep_alive(http, REQUESTS)?;
            let echo_rate = clients::echo_stream(echo, TINY_QUEUE_ECHO)?;
            let after = stats(http)?;
            let verdict = tiny_queue(&before, &after)?;
            Ok(format!(
                "{REQUESTS} keep-alive requests at {rate:.0} req/s, 1 MiB echoed whole at {echo_rate:.1} MiB/s; {verdict}"
            ))
        })),
    }
}

/// The exercise boots (docs/exercises.md).
pub fn cases(timeout: Duration) -> Vec<Case> {
    vec![
        case("exercise-irq-off", "net.irq=off", REQUESTS, irq_off, timeout),
        case("exercise-busy-poll", "net.poll=busy", REQUESTS, busy, timeout),
        case("exercise-no-race-check", "net.race_check=off", RACE_REQUESTS, no_race_check, timeout),
        tiny_queue_case(timeout),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn loop_stats(mode: &str, device: u64, timer: u64, raced: u64, halted: u64, rx: u64) -> Value {
        json!({"interrupts": {"nic_rx": rx, "nic_tx": 0},
            "main_loop": {"mode": mode, "wakeups_device": device, "wakeups_timer": timer, "wakeups_other": 0,
                          "sleeps_raced": raced, "halted_permille": halted}})
    }

    #[test]
    fn each_judge_accepts_its_mode_and_refuses_another() {
        let zero = loop_stats("interrupts", 0, 0, 0, 0, 0);
        assert!(irq_off(&zero, &loop_stats("timer-poll", 0, 40, 0, 900, 0)).is_ok());
        assert!(irq_off(&zero, &loop_stats("timer-poll", 3, 40, 0, 900, 0)).is_err(), "a device wake-up");
        assert!(irq_off(&zero, &loop_stats("interrupts", 0, 40, 0, 900, 0)).is_err());
        assert!(busy(&zero, &loop_stats("busy", 0, 0, 0, 0, 9)).is_ok());
        assert!(busy(&zero, &loop_stats("busy", 0, 0, 0, 12, 9)).is_err(), "halted");
        assert!(no_race_check(&zero, &loop_stats("interrupts", 90, 2, 0, 800, 90)).is_ok());
        assert!(no_race_check(&zero, &loop_stats("interrupts", 90, 2, 1, 800, 90)).is_err(), "a raced sleep");
    }

    #[test]
    fn each_exercise_boot_turns_its_knob() {
        let cases = cases(Duration::from_secs(1));
        let line = |name: &str| cases.iter().find(|c| c.name == name).map(|c| c.boot.cmdline.clone());
        assert_eq!(line("exercise-irq-off").as_deref(), Some("net.irq=off"));
        assert_eq!(line("exercise-busy-poll").as_deref(), Some("net.poll=busy"));
        assert_eq!(line("exercise-no-race-check").as_deref(), Some("net.race_check=off"));
        assert_eq!(line("exercise-tiny-queue").as_deref(), Some("net.queue_size=8"));
        let log =
            |l: &str| vec![format!("[ 0.1] INFO  nic: virtio-net: MAC 52:54:00:12:34:56, MTU 1500, link up, {l}, x")];
        assert!(tiny_queue_log(&log("queues rx 8 tx 8")).is_ok());
        assert!(tiny_queue_log(&log("queues rx 256 tx 256")).is_err());
        let (zero, full) = (json!({"device": {"tx_queue_full": 0}}), json!({"device": {"tx_queue_full": 3}}));
        assert!(tiny_queue(&zero, &zero).is_ok());
        assert!(tiny_queue(&zero, &full).is_err());
    }
}
