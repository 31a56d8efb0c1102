//! The suite's segmentation-offload boots (issue 17): over TAP, with vnet
//! headers, the card offers TSO and receive coalescing and the driver must
//! use them; over QEMU's user network it offers neither and nothing changes.
//! Each boot streams a large echo, compares every byte, and reads `/stats`
//! (its features and the driver's counters). A third boot, over TAP, moves
//! one bulk transfer each way through the HTTP app (`GET /bytes/N`, every
//! byte checked; `POST /sink`, the count checked).

use std::net::SocketAddr;
use std::time::Duration;

use crate::clients::{self, Ports};
use crate::qemu::{Backend, Boot, Forward, Guest, Nic};
use crate::suite::{Case, Expect, free_port};
use crate::{Result, forward, testnet};

/// The echo over TAP: the 100 MiB, byte for byte.
pub const TAP_ECHO_BYTES: usize = 100 << 20;
/// Over the user network: enough to need many segments, quick under slirp.
const USER_ECHO_BYTES: usize = 8 << 20;
/// Each bulk transfer of `serve-bulk-tap`.
const BULK_BYTES: u64 = 32 << 20;
/// How long the guest may take to answer at all.
const SERVING_WITHIN: Duration = Duration::from_secs(60);
/// Features the TAP boot must show, and the user boot must not.
const OFFLOADS: [&str; 5] = ["HOST_TSO4", "HOST_TSO6", "GUEST_TSO4", "GUEST_TSO6", "MRG_RXBUF"];
/// Driver counters that must stay zero in a clean run: drops of device input.
const DROPS: [&str; 6] = [
    "rx_drop_gso_not_negotiated",
    "rx_drop_gso_mismatch",
    "rx_drop_bad_num_buffers",
    "rx_drop_bad_chain",
    "rx_drop_bad_header",
    "tx_drop_no_buffer",
];

/// Host ports forwarded into a TAP boot's namespace, to its HTTP and echo ports.
fn tap_forwards(guest: &Guest) -> Result<Ports> {
    let netns = guest.netns.as_deref().ok_or("the TAP boot has no namespace")?;
    let ports = Ports { http: free_port(), echo: free_port() };
    let guest_at = |port| SocketAddr::from((testnet::GUEST_IP, port));
    forward::spawn(ports.http, netns, guest_at(testnet::HTTP_PORT))?;
    forward::spawn(ports.echo, netns, guest_at(testnet::ECHO_PORT))?;
    Ok(ports)
}

/// `serve-offloads-tap`, `serve-offloads-user` and `serve-bulk-tap`.
pub fn cases(timeout: Duration) -> Vec<Case> {
    let tap = Case {
        name: "serve-offloads-tap",
        boot: crate::stress::hostile_boot(true),
        expect: Expect::Serves,
        timeout: timeout.max(Duration::from_secs(240)),
        client: Some(Box::new(|guest| check(tap_forwards(guest)?, true, TAP_ECHO_BYTES))),
    };
    let ports = Ports { http: free_port(), echo: free_port() };
    let user = Case {
        name: "serve-offloads-user",
        boot: Boot {
            nic: Some(Nic { forwards: vec![Forward::http(ports.http), Forward::echo(ports.echo)], ..Nic::default() }),
            ..Boot::default()
        },
        expect: Expect::Serves,
        timeout: timeout.max(Duration::from_secs(120)),
        client: Some(Box::new(move |_| check(ports, false, USER_ECHO_BYTES))),
    };
    let bulk = Case {
        name: "serve-bulk-tap",
        boot: crate::stress::hostile_boot(true),
        expect: Expect::Serves,
        timeout: timeout.max(Duration::from_secs(180)),
        client: Some(Box::new(|guest| check_bulk(tap_forwards(guest)?))),
    };
    debug_assert!(matches!(tap.boot.nic, Some(Nic { backend: Backend::Tap, offload: true, .. })));
    vec![tap, user, bulk]
}

/// One `GET /bytes/N` and one `POST /sink` of `BULK_BYTES`, checked, then
/// `/stats`: TSO and coalescing used, no drops.
fn check_bulk(ports: Ports) -> Result<String> {
    use crate::bench::bulk::{self, Direction};
    clients::wait_until_serving(ports.http, SERVING_WITHIN)?;
    let http = SocketAddr::from(([127, 0, 0, 1], ports.http));
    let mut rates = Vec::new();
    for direction in [Direction::FromGuest, Direction::ToGuest] {
        let run = bulk::run(http, direction, BULK_BYTES);
        if let Some(e) = run.error {
            return Err(format!("{}: {e}", direction.request()));
        }
        rates.push(run.mib_per_second());
    }
    let stats = clients::stats(ports)?;
    let counter = |name: &str| stats.pointer(&format!("/device/{name}")).and_then(|v| v.as_u64()).unwrap_or(0);
    let (tso, gso) = (counter("tx_tso_frames"), counter("rx_gso_frames"));
    if tso == 0 || gso == 0 {
        return Err(format!("offloads unused by the transfers: tx_tso_frames {tso}, rx_gso_frames {gso}"));
    }
    if let Some(drop) = DROPS.iter().find(|d| counter(d) != 0) {
        return Err(format!("{drop} is {} in a clean run", counter(drop)));
    }
    Ok(format!(
        "GET /bytes/{BULK_BYTES} checked byte for byte at {:.0} MiB/s, POST /sink of as many counted at {:.0} MiB/s \
         (through xtask's port forward); TSO frames {tso}, coalesced frames {gso}",
        rates[0], rates[1]
    ))
}

/// Echo `bytes` byte for byte, then `/stats`: the offload features and
/// their counters present (`offloads`) or absent, and no drops.
fn check(ports: Ports, offloads: bool, bytes: usize) -> Result<String> {
    clients::wait_until_serving(ports.http, SERVING_WITHIN)?;
    let rate = clients::echo_stream(ports.echo, bytes)?;
    let stats = clients::stats(ports)?;
    let features = stats.pointer("/features").and_then(|f| f.as_str()).unwrap_or_default().to_string();
    let counter = |name: &str| stats.pointer(&format!("/device/{name}")).and_then(|v| v.as_u64()).unwrap_or(0);
    let has = |name: &str| features.split(' ').any(|f| f == name);
    let (tso, gso, merged) = (counter("tx_tso_frames"), counter("rx_gso_frames"), counter("rx_merged_frames"));
    if offloads {
        if let Some(missing) = OFFLOADS.iter().find(|f| !has(f)) {
            return Err(format!("/stats features lack {missing}: {features}"));
        }
        if tso == 0 || gso == 0 || merged == 0 {
            return Err(format!(
                "offloads negotiated but unused: tx_tso_frames {tso}, rx_gso_frames {gso}, rx_merged_frames {merged}"
            ));
        }
    } else {
        if let Some(present) = OFFLOADS.iter().find(|f| has(f)) {
            return Err(format!("/stats features name {present} on the user network: {features}"));
        }
        if tso + gso + merged != 0 {
            return Err(format!("TSO or coalescing without the features: {tso} {gso} {merged}"));
        }
    }
    if let Some(drop) = DROPS.iter().find(|d| counter(d) != 0) {
        return Err(format!("{drop} is {} in a clean run", counter(drop)));
    }
    Ok(format!(
        "{} MiB echoed byte-identical at {rate:.0} MiB/s; TSO frames {tso} (avg {} bytes), coalesced frames {gso} \
         ({merged} joined from several buffers); features {features}",
        bytes >> 20,
        counter("tx_tso_bytes").checked_div(tso).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tap_case_boots_on_tap_with_offloads_and_the_user_one_on_slirp() {
        let cases = cases(Duration::from_secs(1));
        let backends: Vec<_> = cases.iter().map(|c| c.boot.nic.as_ref().map(|n| (n.backend, n.offload))).collect();
        assert_eq!(backends, [Some((Backend::Tap, true)), Some((Backend::User, true)), Some((Backend::Tap, true))]);
    }
}
