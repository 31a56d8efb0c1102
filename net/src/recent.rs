//! The most recent connections, for `/stats` and the live page: a small
//! fixed ring, so that watching costs no memory however many connections
//! come and go.
//!
//! Each app keeps a [`Follow`] per socket and shows it the socket once per
//! poll; the follower notices a connection opening, its TCP state changes
//! (each one a packet-trace line) and its end, and records them here.

use core::fmt;

use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use crate::json::JsonWriter;
use crate::sockets::state_name;
use crate::trace;

/// Connections remembered: enough to see a browser's few at a glance.
pub const RECENT: usize = 8;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Still open.
    Open,
    /// Closed in order (FIN both ways).
    Closed,
    /// Reset, by either side, before an orderly close.
    Reset,
    /// Closed by the app after its idle timeout.
    TimedOut,
}

impl Ending {
    /// The name in `/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Ending::Open => "open",
            Ending::Closed => "closed",
            Ending::Reset => "reset",
            Ending::TimedOut => "timed out",
        }
    }
}

/// One connection, as remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Which app served it (`http`, `echo`).
    pub app: &'static str,
    /// The peer's address and port.
    pub peer: Option<IpEndpoint>,
    /// When it opened, in milliseconds since boot.
    pub opened_ms: u64,
    /// When it ended, if it has.
    pub closed_ms: Option<u64>,
    /// Its TCP state when last seen.
    pub state: tcp::State,
    /// How it ended.
    pub ending: Ending,
    /// HTTP requests answered on it (0 for echo).
    pub requests: u64,
    /// Bytes the app read from it.
    pub bytes_in: u64,
    /// Bytes the app wrote to it.
    pub bytes_out: u64,
}

/// Names a record; goes stale (and is ignored) once the ring reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

/// The last [`RECENT`] connections.
#[derive(Debug)]
pub struct RecentConnections {
    /// Each slot with the number of the connection in it.
    slots: [Option<(u64, Record)>; RECENT],
    /// Connections recorded so far (the next one's number).
    total: u64,
}

impl Default for RecentConnections {
    fn default() -> Self {
        Self::new()
    }
}

impl RecentConnections {
    /// An empty ring.
    pub const fn new() -> Self {
        RecentConnections { slots: [None; RECENT], total: 0 }
    }

    /// Records a new connection, replacing the oldest if the ring is full.
    pub fn open(&mut self, app: &'static str, peer: Option<IpEndpoint>, now_ms: u64) -> Ticket {
        let number = self.total;
        self.total += 1;
        let record = Record {
            app,
            peer,
            opened_ms: now_ms,
            closed_ms: None,
            state: tcp::State::Established,
            ending: Ending::Open,
            requests: 0,
            bytes_in: 0,
            bytes_out: 0,
        };
        self.slots[(number % RECENT as u64) as usize] = Some((number, record));
        Ticket(number)
    }

    /// The record `ticket` names, unless the ring has reused its slot.
    pub fn get_mut(&mut self, ticket: Ticket) -> Option<&mut Record> {
        match &mut self.slots[(ticket.0 % RECENT as u64) as usize] {
            Some((number, record)) if *number == ticket.0 => Some(record),
            _ => None,
        }
    }

    /// Connections recorded since boot.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The remembered connections, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        let total = self.total;
        (0..RECENT as u64).filter_map(move |age| {
            let number = total.checked_sub(age + 1)?;
            self.slots[(number % RECENT as u64) as usize].as_ref().map(|(_, r)| r)
        })
    }

    /// Writes `"connections_total"` and the `"recent"` array into `/stats`.
    pub fn write_json(&self, json: &mut JsonWriter) {
        json.number("connections_total", self.total);
        json.begin_array("recent");
        for r in self.iter() {
            json.begin_array_object();
            json.string("app", r.app);
            json.endpoint("peer", r.peer);
            json.number("opened_ms", r.opened_ms);
            match r.closed_ms {
                Some(ms) => json.number("closed_ms", ms),
                None => json.null("closed_ms"),
            }
            json.string("state", state_name(r.state));
            json.string("ending", r.ending.name());
            json.number("requests", r.requests);
            json.number("bytes_in", r.bytes_in);
            json.number("bytes_out", r.bytes_out);
            json.end_object();
        }
        json.end_array();
    }
}

/// The socket an app follows, named in trace lines as `app#index`.
#[derive(Clone, Copy, Debug)]
pub struct SocketName {
    /// The app (`http`, `echo`).
    pub app: &'static str,
    /// The socket's index among the app's sockets.
    pub index: usize,
}

impl fmt::Display for SocketName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}#{}", self.app, self.index)
    }
}

/// What an app keeps per socket to follow its connections.
#[derive(Clone, Copy, Debug)]
pub struct Follow {
    name: SocketName,
    ticket: Option<Ticket>,
    state: tcp::State,
    peer: Option<IpEndpoint>,
}

impl Follow {
    /// Follows socket `index` of `app`, which starts out closed.
    pub fn new(app: &'static str, index: usize) -> Self {
        Follow { name: SocketName { app, index }, ticket: None, state: tcp::State::Closed, peer: None }
    }

    /// The socket's name for trace lines.
    pub fn name(&self) -> SocketName {
        self.name
    }

    /// The peer of the current connection, if any.
    pub fn peer(&self) -> Option<IpEndpoint> {
        self.peer
    }

    /// Looks at the socket: records a connection that opened, traces a
    /// state change, and records how a connection ended.
    pub fn observe(
        &mut self,
        recent: &mut RecentConnections,
        state: tcp::State,
        peer: Option<IpEndpoint>,
        now_ms: u64,
    ) {
        if state == self.state {
            return;
        }
        let before = self.state;
        self.state = state;
        let connected = !matches!(state, tcp::State::Closed | tcp::State::Listen);
        if connected && self.ticket.is_none() {
            self.ticket = Some(recent.open(self.name.app, peer, now_ms));
            self.peer = peer;
        }
        let idle = |s| matches!(s, tcp::State::Closed | tcp::State::Listen);
        if trace::enabled() && !(idle(before) && idle(state)) {
            match self.peer {
                Some(peer) => log::trace!(
                    target: trace::TARGET,
                    "-- socket {} {peer} {} -> {}",
                    self.name,
                    state_name(before),
                    state_name(state)
                ),
                None => {
                    log::trace!(target: trace::TARGET, "-- socket {} {} -> {}", self.name, state_name(before), state_name(state))
                }
            }
        }
        if let Some(record) = self.record(recent) {
            // A socket listening again is a closed connection to the record.
            record.state = if connected { state } else { tcp::State::Closed };
        }
        if !connected {
            // As far as the app saw: a socket that had begun closing (a FIN
            // either way) closed; one that drops from an open state was reset
            // (or aborted). Polls are coarse, so states in between are missed.
            let ending = match before {
                tcp::State::Established | tcp::State::SynReceived | tcp::State::SynSent => Ending::Reset,
                _ => Ending::Closed,
            };
            self.end(recent, ending, now_ms);
        }
    }

    /// Records that the connection ended (`TimedOut` when the app aborts it).
    pub fn end(&mut self, recent: &mut RecentConnections, ending: Ending, now_ms: u64) {
        if let Some(record) = self.record(recent)
            && record.ending == Ending::Open
        {
            record.ending = ending;
            record.closed_ms = Some(now_ms);
        }
        self.ticket = None;
        self.peer = None;
    }

    /// The current connection's record, if it is still in the ring.
    pub fn record<'a>(&self, recent: &'a mut RecentConnections) -> Option<&'a mut Record> {
        recent.get_mut(self.ticket?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use smoltcp::wire::{IpAddress, Ipv4Address};

    fn peer(port: u16) -> Option<IpEndpoint> {
        Some(IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 2)), port))
    }

    #[test]
    fn the_ring_keeps_the_newest_and_lists_them_first() {
        let mut recent = RecentConnections::new();
        let tickets: Vec<Ticket> = (0..RECENT as u16 + 3).map(|i| recent.open("http", peer(1000 + i), 0)).collect();
        assert_eq!(recent.total(), RECENT as u64 + 3);
        let ports: Vec<u16> = recent.iter().map(|r| r.peer.unwrap().port).collect();
        let expected: Vec<u16> = (3..RECENT as u16 + 3).rev().map(|i| 1000 + i).collect();
        assert_eq!(ports, expected);
        // The oldest three were overwritten: their tickets are stale.
        assert!(recent.get_mut(tickets[0]).is_none());
        assert!(recent.get_mut(tickets[3]).is_some());
    }

    #[test]
    fn a_follower_records_open_and_orderly_close() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("http", 3);
        follow.observe(&mut recent, tcp::State::Listen, None, 5);
        assert_eq!(recent.total(), 0);
        follow.observe(&mut recent, tcp::State::Established, peer(40312), 10);
        follow.record(&mut recent).unwrap().requests += 1;
        follow.observe(&mut recent, tcp::State::TimeWait, peer(40312), 20);
        follow.observe(&mut recent, tcp::State::Closed, None, 120);
        let r = recent.iter().next().unwrap();
        assert_eq!((r.opened_ms, r.closed_ms, r.ending, r.requests), (10, Some(120), Ending::Closed, 1));
        assert_eq!(r.state, tcp::State::Closed);
        // The socket listens again and takes a second connection.
        follow.observe(&mut recent, tcp::State::Listen, None, 130);
        follow.observe(&mut recent, tcp::State::SynReceived, peer(40313), 140);
        assert_eq!(recent.total(), 2);
        assert_eq!(recent.iter().next().unwrap().ending, Ending::Open);
    }

    #[test]
    fn a_close_seen_only_at_its_start_is_still_a_close() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("http", 0);
        follow.observe(&mut recent, tcp::State::Established, peer(5), 1);
        // CLOSE-WAIT, then LAST-ACK and CLOSED between two polls.
        follow.observe(&mut recent, tcp::State::CloseWait, peer(5), 2);
        follow.observe(&mut recent, tcp::State::Closed, None, 3);
        assert_eq!(recent.iter().next().unwrap().ending, Ending::Closed);
    }

    #[test]
    fn a_socket_reopened_and_reused_between_polls_counts_two_connections() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("http", 0);
        follow.observe(&mut recent, tcp::State::Established, peer(5), 1);
        follow.observe(&mut recent, tcp::State::TimeWait, peer(5), 2);
        // The app reopens the socket and tells the follower at once...
        follow.observe(&mut recent, tcp::State::Listen, None, 3);
        // ...so a SYN before its next poll starts a new connection.
        follow.observe(&mut recent, tcp::State::SynReceived, peer(6), 4);
        assert_eq!(recent.total(), 2);
        assert_eq!(recent.iter().nth(1).unwrap().state, tcp::State::Closed, "not LISTEN");
        let ports: Vec<u16> = recent.iter().map(|r| r.peer.unwrap().port).collect();
        assert_eq!(ports, [6, 5]);
        assert_eq!(follow.peer(), peer(6));
    }

    #[test]
    fn a_connection_that_drops_to_closed_from_established_was_reset() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("echo", 0);
        follow.observe(&mut recent, tcp::State::Established, peer(5), 1);
        follow.observe(&mut recent, tcp::State::Closed, None, 2);
        assert_eq!(recent.iter().next().unwrap().ending, Ending::Reset);
    }

    #[test]
    fn a_timeout_is_recorded_once_and_not_overwritten_by_the_close() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("http", 0);
        follow.observe(&mut recent, tcp::State::Established, peer(5), 1);
        follow.end(&mut recent, Ending::TimedOut, 50);
        follow.observe(&mut recent, tcp::State::Closed, None, 51);
        let r = recent.iter().next().unwrap();
        assert_eq!((r.ending, r.closed_ms), (Ending::TimedOut, Some(50)));
    }

    #[test]
    fn stats_json_lists_the_newest_first() {
        let mut recent = RecentConnections::new();
        let mut follow = Follow::new("http", 0);
        follow.observe(&mut recent, tcp::State::Established, peer(1), 7);
        let mut json = JsonWriter::new();
        recent.write_json(&mut json);
        assert_eq!(
            json.finish(),
            r#"{"connections_total":1,"recent":[{"app":"http","peer":"10.0.2.2:1","opened_ms":7,"closed_ms":null,"state":"established","ending":"open","requests":0,"bytes_in":0,"bytes_out":0}]}"#
        );
    }
}
