//! The connection pool: one lifecycle for every app's TCP connections, and
//! the accept queue smoltcp lacks.
//!
//! smoltcp has no listen backlog: a SYN that finds no listening socket on its
//! port is answered with a reset. So the pool keeps a few sockets per port in
//! LISTEN and refills them after every frame the stack takes in (one frame
//! holds at most one SYN, so a burst of SYNs never finds the port without a
//! listener). A socket that leaves LISTEN is judged at once:
//!
//! - with `half_open` connections already half-open, or the pool at
//!   `max_conns`: the oldest half-open one is dropped to make room
//!   (`half_open_evicted`), so that a spoofed SYN flood cannot keep real
//!   clients out, once it has had `HALF_OPEN_GRACE` to complete;
//! - if there is still no room (the half-open cap, `max_conns`, the port's
//!   own cap, or the peer at `per_peer`, counted `per_peer_refused`): it
//!   waits in the accept queue, out of the socket set and unanswered, until
//!   a slot frees (then its SYN-ACK goes out); the client's retransmitted
//!   SYNs meanwhile are dropped;
//! - if the queue is full too (`backlog`, or the port's cap in SYNs queued
//!   for it; more would keep a real client behind a flood): dropped silently
//!   (`syn_dropped_full`), as Linux does: the client retries, not fails;
//! - otherwise it waits half-open here until the handshake completes (or for
//!   `SYN_RECEIVED_TIMEOUT`), then becomes a [`ServerSocket`] its app owns, until
//!   the app gives it back with [`Pool::release`].
//!
//! "Dropped silently" means removed from the socket set before the stack
//! transmits: no SYN-ACK and no reset leave. A socket given back is removed
//! and freed, so its buffers return to the heap at once: the buffers in use
//! are bounded by the limit, and the heap returns to its baseline when the
//! connections are gone.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::{Socket, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::json::JsonWriter;
use crate::recent::{Ending, Follow, RecentConnections};
use crate::room;
use crate::sockets::{SYN_RECEIVED_TIMEOUT, ServerSocket, millis, server_socket};
use crate::time_wait::{Departures, TimeWaitTable};
use crate::trace;

/// Sockets per port waiting in LISTEN. One would do (they are refilled after
/// every frame); a few spare the refill a frame's worth of latency.
pub const LISTENERS_PER_PORT: usize = 4;
/// How long a half-open connection is safe from eviction: a real client
/// answers the SYN-ACK within a round trip, and a burst of a thousand SYNs
/// queued ahead of its ACK takes the stack a few milliseconds. Without it,
/// real clients' SYNs evicted each other before their ACKs could arrive (the
/// ACK of an evicted one meets no socket, and is answered with a reset).
pub const HALF_OPEN_GRACE: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(20);
/// How long a SYN may wait in the accept queue: past this its client (Linux
/// gives up after its sixth retransmission, 127 s after the first SYN) has.
pub const QUEUED_MAX_AGE: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(130);
/// Queued SYNs looked at per poll step when a slot is free (those whose peer
/// or port is still full go to the back of the queue).
const UNQUEUE_SCAN: usize = 64;
/// The connection limit when nothing sized it to a heap (host tests, fuzzing).
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// The fewest connections the limit allows, however small the heap.
pub const MIN_CONNS: usize = 8;
/// Connections may take this share (1/N) of the heap that is free when the
/// stack starts; the echo app's own sockets take up to half
/// (`crate::apps::echo`), the rest is for smoltcp and the frames in flight.
const HEAP_SHARE_DIVISOR: usize = 4;
/// What an HTTP connection holds besides its socket: its request and answer
/// buffers while one is in flight (`crate::apps::http`), a typical size.
const APP_STATE_BYTES: usize = 2 * 1024;

/// The heap one connection takes: its slot in the socket set, its TCP
/// buffers (`rx` + `tx`) and the app's own state.
pub fn conn_cost(rx: usize, tx: usize) -> usize {
    core::mem::size_of::<SocketStorage<'static>>() + rx + tx + APP_STATE_BYTES
}

/// The default `net.max_conns` (and `net.backlog`: a waiting SYN holds a
/// socket too) for a heap with `free` bytes free when the stack starts: as
/// many HTTP connections as fit in its share, each.
pub fn conns_for_heap(free: usize) -> usize {
    let (rx, tx) = crate::apps::http::BUFFERS;
    (free / HEAP_SHARE_DIVISOR / conn_cost(rx, tx)).max(MIN_CONNS)
}

/// The pool's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once, half-open ones included (`net.max_conns`).
    pub max_conns: usize,
    /// Connections at once from one address (`net.max_conns_per_peer`).
    pub per_peer: usize,
    /// Half-open connections at once; past it the oldest is dropped.
    pub half_open: usize,
    /// SYNs waiting for a slot at once (`net.backlog`; for one port, also at most its `PortSpec::max`).
    pub backlog: usize,
}

impl Limits {
    /// The limits for `max_conns` connections: `per_peer` (default three
    /// quarters of them, generous but short of the whole pool), as many
    /// half-open at most, and `backlog` SYNs waiting (default `max_conns`).
    pub fn new(max_conns: usize, per_peer: Option<usize>, backlog: Option<usize>) -> Limits {
        let max_conns = max_conns.max(1);
        let three_quarters = (max_conns - max_conns / 4).max(1);
        let per_peer = per_peer.unwrap_or(three_quarters).max(1);
        Limits { max_conns, per_peer, half_open: three_quarters, backlog: backlog.unwrap_or(max_conns) }
    }
}

/// An app's port, as the pool serves it.
#[derive(Clone, Copy, Debug)]
pub struct PortSpec {
    /// The TCP port.
    pub port: u16,
    /// The app's name, for `/stats` and trace lines (`http#12`).
    pub app: &'static str,
    /// Each socket's receive buffer, in bytes.
    pub rx: usize,
    /// Each socket's send buffer, in bytes.
    pub tx: usize,
    /// The receive buffer a connection may be given later (0: none larger than `rx`):
    /// its window scale is offered at the handshake, the only time it can be (smoltcp patch 15).
    pub rx_may_grow_to: usize,
    /// Connections at once on this port, within the pool's limit (an app
    /// with large buffers caps its share).
    pub max: usize,
}

struct Port {
    spec: PortSpec,
    listeners: Vec<SocketHandle>,
    /// Half-open connections on the port.
    half_open: usize,
    /// Connections handed to the app and not yet given back.
    owned: usize,
    /// SYNs waiting in the accept queue for this port (at most `spec.max`).
    queued: usize,
    /// Connections that completed their handshake, for the app to take.
    accepted: Vec<ServerSocket>,
    /// The next connection's number, for its name (`http#N`).
    next_index: usize,
}

/// A SYN waiting for a slot: its socket, out of the set so that it sends
/// nothing (not even its SYN-ACK) until it is put back.
struct Queued {
    port: usize,
    socket: Socket<'static>,
    remote: IpEndpoint,
    since: Instant,
}

struct HalfOpen {
    port: usize,
    conn: ServerSocket,
    began: Instant,
}

/// What `/stats` shows of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Sockets waiting in LISTEN.
    pub listening: u64,
    /// Connections still in their handshake.
    pub half_open: u64,
    /// Connections the apps own.
    pub established: u64,
    /// `net.max_conns`.
    pub limit: u64,
    /// SYNs waiting in the accept queue for a slot.
    pub queued: u64,
    /// SYNs dropped without a reply because the pool (or port) was full.
    pub syn_dropped_full: u64,
    /// Half-open connections dropped to make room for a new SYN.
    pub half_open_evicted: u64,
    /// SYNs not admitted at once because their peer held
    /// `net.max_conns_per_peer` already (queued, or dropped).
    pub per_peer_refused: u64,
    /// The loss-recovery counters of the sockets the pool has freed, which
    /// `/stats`' `tcp` object adds to the live sockets' (not shown under `pool`).
    pub retired_tcp: tcp::RecoveryCounters,
}

impl PoolStats {
    /// Writes the `"pool"` object into `/stats`.
    pub fn write_json(&self, json: &mut JsonWriter) {
        json.begin_object("pool");
        json.number("listening", self.listening);
        json.number("half_open", self.half_open);
        json.number("established", self.established);
        json.number("limit", self.limit);
        json.number("queued", self.queued);
        json.number("syn_dropped_full", self.syn_dropped_full);
        json.number("half_open_evicted", self.half_open_evicted);
        json.number("per_peer_refused", self.per_peer_refused);
        json.end_object();
    }
}

/// Every app port's listeners, the half-open connections, and the counts
/// that bound them.
pub struct Pool {
    ports: Vec<Port>,
    half_open: VecDeque<HalfOpen>,
    /// The accept queue, oldest first, and its SYNs' (peer, port).
    queue: VecDeque<Queued>,
    queued: BTreeSet<(IpEndpoint, u16)>,
    /// Connections (half-open or owned) per peer address.
    peers: BTreeMap<IpAddress, usize>,
    limits: Limits,
    syn_dropped_full: u64,
    half_open_evicted: u64,
    per_peer_refused: u64,
    /// What freed sockets had counted (see [`PoolStats::retired_tcp`]).
    retired_tcp: tcp::RecoveryCounters,
    /// Poll steps so far.
    steps: u64,
    /// A connection lingers in TIME-WAIT until the next step.
    lingering: bool,
    /// Nagle's algorithm on new sockets.
    nagle: bool,
    /// Sockets freed in TIME-WAIT, for the stack to remember (`crate::time_wait`).
    departures: Departures,
}

impl Pool {
    /// An empty pool with `limits`.
    pub fn new(limits: Limits) -> Pool {
        Pool {
            ports: Vec::new(),
            half_open: VecDeque::new(),
            queue: VecDeque::new(),
            queued: BTreeSet::new(),
            peers: BTreeMap::new(),
            limits,
            syn_dropped_full: 0,
            half_open_evicted: 0,
            per_peer_refused: 0,
            retired_tcp: tcp::RecoveryCounters::default(),
            steps: 0,
            lingering: false,
            nagle: false,
            departures: Departures::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Nagle's algorithm on every socket made from now on (`net.nagle`; off
    /// by default, see `crate::sockets::server_socket`).
    pub fn set_nagle(&mut self, on: bool) {
        self.nagle = on;
    }

    /// A new listener for `spec`'s port.
    fn listener(&self, spec: &PortSpec) -> tcp::Socket<'static> {
        let mut socket = server_socket(spec.rx, spec.tx, spec.port);
        socket.set_nagle_enabled(self.nagle);
        socket.set_window_scale_for(spec.rx_may_grow_to);
        socket
    }

    /// Serves `spec`'s port: its listeners go into `sockets` now.
    pub fn add_port(&mut self, sockets: &mut SocketSet<'static>, spec: PortSpec) {
        let listeners = (0..LISTENERS_PER_PORT).map(|_| sockets.add(self.listener(&spec))).collect();
        self.ports.push(Port {
            spec,
            listeners,
            half_open: 0,
            owned: 0,
            queued: 0,
            accepted: Vec::new(),
            next_index: 0,
        });
    }

    /// Connections now, half-open ones included.
    pub fn live(&self) -> usize {
        self.half_open.len() + self.ports.iter().map(|p| p.owned + p.accepted.len()).sum::<usize>()
    }

    /// After each frame the stack takes in: judges every socket that left
    /// LISTEN (see the module's comment) and puts a new listener in its place.
    pub fn after_ingress(&mut self, sockets: &mut SocketSet<'static>, recent: &mut RecentConnections, now: Instant) {
        for p in 0..self.ports.len() {
            for l in 0..LISTENERS_PER_PORT {
                let handle = self.ports[p].listeners[l];
                let socket = sockets.get::<tcp::Socket>(handle);
                if socket.is_listening() {
                    continue;
                }
                let (state, remote) = (socket.state(), socket.remote_endpoint());
                let spec = self.ports[p].spec;
                self.ports[p].listeners[l] = sockets.add(self.listener(&spec));
                self.admit(sockets, recent, now, p, handle, state, remote);
            }
        }
    }

    /// Judges a socket that just left LISTEN on port `p`.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        sockets: &mut SocketSet<'static>,
        recent: &mut RecentConnections,
        now: Instant,
        p: usize,
        handle: SocketHandle,
        state: tcp::State,
        remote: Option<IpEndpoint>,
    ) {
        let spec = self.ports[p].spec;
        let Some(remote) = remote.filter(|_| state == tcp::State::SynReceived) else {
            // Only a SYN takes a listener; anything else is not a connection.
            self.drop_socket(sockets, handle);
            return;
        };
        if self.queued.contains(&(remote, spec.port)) {
            // A retransmission of a SYN that waits already.
            self.drop_socket(sockets, handle);
            return;
        }
        let peer_full = self.peer_count(remote.addr) >= self.limits.per_peer;
        if peer_full {
            self.per_peer_refused += 1;
        } else {
            self.make_room(sockets, recent, now, p);
        }
        let port_full = self.port_full(p);
        let half_open_full = self.half_open.len() >= self.limits.half_open;
        if !(peer_full || port_full || half_open_full || self.live() >= self.limits.max_conns) {
            self.start(recent, now, p, handle, remote);
        } else if self.queue.len() < self.limits.backlog && self.ports[p].queued < spec.max {
            // Wait for a slot, unanswered.
            self.ports[p].queued += 1;
            self.queued.insert((remote, spec.port));
            self.queue.push_back(Queued { port: p, socket: sockets.remove(handle), remote, since: now });
        } else {
            self.syn_dropped_full += 1;
            trace_drop(&spec, Some(remote), "pool full");
            self.drop_socket(sockets, handle);
        }
    }

    /// Connections from `addr` now.
    fn peer_count(&self, addr: IpAddress) -> usize {
        self.peers.get(&addr).copied().unwrap_or(0)
    }

    /// Admits the half-open connection on `handle` (port `p`).
    fn start(
        &mut self,
        recent: &mut RecentConnections,
        now: Instant,
        p: usize,
        handle: SocketHandle,
        remote: IpEndpoint,
    ) {
        let port = &mut self.ports[p];
        let mut follow = Follow::new(port.spec.app, port.next_index);
        port.next_index += 1;
        port.half_open += 1;
        follow.observe(recent, tcp::State::Listen, None, millis(now));
        follow.observe(recent, tcp::State::SynReceived, Some(remote), millis(now));
        *self.peers.entry(remote.addr).or_insert(0) += 1;
        let conn = ServerSocket::new(handle, Some(remote.addr), now, follow);
        self.half_open.push_back(HalfOpen { port: p, conn, began: now });
    }

    /// After the apps, while there are free slots: SYNs from the accept
    /// queue go back into the set (their SYN-ACKs leave in this step's
    /// egress), oldest first; those waiting longer than `QUEUED_MAX_AGE` go.
    pub fn unqueue(&mut self, sockets: &mut SocketSet<'static>, recent: &mut RecentConnections, now: Instant) {
        for _ in 0..self.queue.len().min(UNQUEUE_SCAN) {
            if self.live() >= self.limits.max_conns || self.half_open.len() >= self.limits.half_open {
                break;
            }
            let Some(q) = self.queue.pop_front() else { break };
            let key = (q.remote, self.ports[q.port].spec.port);
            if now - q.since > QUEUED_MAX_AGE {
                self.queued.remove(&key);
                self.ports[q.port].queued = self.ports[q.port].queued.saturating_sub(1);
                continue;
            }
            if self.port_full(q.port) {
                // A port at its own cap with stale half-open connections
                // (a flood's) must not leave the queue waiting on them.
                self.make_room(sockets, recent, now, q.port);
            }
            if self.port_full(q.port) || self.peer_count(q.remote.addr) >= self.limits.per_peer {
                self.queue.push_back(q);
                continue;
            }
            self.queued.remove(&key);
            self.ports[q.port].queued = self.ports[q.port].queued.saturating_sub(1);
            let handle = sockets.add(q.socket);
            self.start(recent, now, q.port, handle, q.remote);
        }
        room::shrink_queue_when_sparse(&mut self.queue);
    }

    /// Connections on port `p` now, against its own cap.
    fn port_full(&self, p: usize) -> bool {
        let port = &self.ports[p];
        port.half_open + port.owned + port.accepted.len() >= port.spec.max
    }

    /// With the half-open cap or the limit reached, or port `p` at its own
    /// cap, drops the oldest half-open connection (on `p`, for the port's
    /// cap) to make room for a new SYN, if it has had `HALF_OPEN_GRACE` to
    /// complete its handshake. Connections that did complete go to their
    /// app on the way.
    fn make_room(&mut self, sockets: &mut SocketSet<'static>, recent: &mut RecentConnections, now: Instant, p: usize) {
        loop {
            let global = self.half_open.len() >= self.limits.half_open || self.live() >= self.limits.max_conns;
            let at = match global {
                true => 0,
                false if self.port_full(p) => match self.half_open.iter().position(|h| h.port == p) {
                    Some(at) => at,
                    None => return,
                },
                false => return,
            };
            let Some(oldest) = self.half_open.get(at) else { return };
            let waiting = sockets.get::<tcp::Socket>(oldest.conn.handle()).state() == tcp::State::SynReceived;
            if waiting && now - oldest.began < HALF_OPEN_GRACE {
                return;
            }
            let Some(oldest) = self.half_open.remove(at) else { return };
            if waiting {
                self.half_open_evicted += 1;
                trace_drop(&self.ports[oldest.port].spec, oldest.conn.follow().peer(), "oldest half-open evicted");
                self.forget(sockets, recent, oldest, now);
                return;
            }
            self.settle(sockets, recent, now, oldest);
        }
    }

    /// Once per poll step, before the apps: half-open connections whose
    /// handshake completed go to their app; those reset, or half-open for
    /// longer than `SYN_RECEIVED_TIMEOUT`, are dropped.
    pub fn step(&mut self, sockets: &mut SocketSet<'static>, recent: &mut RecentConnections, now: Instant) {
        self.steps += 1;
        self.lingering = false;
        for _ in 0..self.half_open.len() {
            let Some(h) = self.half_open.pop_front() else { break };
            self.settle(sockets, recent, now, h);
        }
        room::shrink_queue_when_sparse(&mut self.half_open);
        for port in &mut self.ports {
            room::shrink_when_sparse(&mut port.accepted);
        }
    }

    /// Puts half-open connection `h` where it belongs now: back in the
    /// queue, with its app, or gone.
    fn settle(
        &mut self,
        sockets: &mut SocketSet<'static>,
        recent: &mut RecentConnections,
        now: Instant,
        mut h: HalfOpen,
    ) {
        let socket = sockets.get::<tcp::Socket>(h.conn.handle());
        match socket.state() {
            tcp::State::SynReceived if now - h.began <= SYN_RECEIVED_TIMEOUT => self.half_open.push_back(h),
            // Reset (smoltcp puts a passive socket back in LISTEN), or never completed.
            tcp::State::SynReceived | tcp::State::Closed | tcp::State::Listen => self.forget(sockets, recent, h, now),
            state => {
                let remote = socket.remote_endpoint();
                h.conn.follow_mut().observe(recent, state, remote, millis(now));
                let port = &mut self.ports[h.port];
                port.half_open = port.half_open.saturating_sub(1);
                port.accepted.push(h.conn);
            }
        }
    }

    /// Entries the pool's lists have room for (for tests: it must shrink back).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.half_open.capacity()
            + self.queue.capacity()
            + self.ports.iter().map(|p| p.accepted.capacity()).sum::<usize>()
            + self.departures.room()
    }

    /// The current poll step's number, for `ServerSocket::begin`.
    pub fn step_number(&self) -> u64 {
        self.steps
    }

    /// An app's connection lingers in TIME-WAIT (`Turn::Idle`): the stack
    /// polls again at once rather than after a poll delay, so that it goes
    /// back to the pool within microseconds.
    pub fn note_lingering(&mut self) {
        self.lingering = true;
    }

    /// Whether a connection lingers in TIME-WAIT until the next step.
    pub fn lingering(&self) -> bool {
        self.lingering
    }

    /// The connections on `port` that completed their handshake since the
    /// last call: the app owns them from now on.
    pub fn accept(&mut self, port: u16) -> impl Iterator<Item = ServerSocket> + '_ {
        let found = self.ports.iter_mut().find(|p| p.spec.port == port);
        found.into_iter().flat_map(|p| {
            p.owned += p.accepted.len();
            p.accepted.drain(..)
        })
    }

    /// Takes back a connection on `port` that has ended (`Turn::Ended`):
    /// the one place where a socket leaves the app and goes back to the pool.
    /// Its socket is freed, buffers and all.
    pub fn release(&mut self, sockets: &mut SocketSet<'static>, port: u16, conn: ServerSocket) {
        if let Some(p) = self.ports.iter_mut().find(|p| p.spec.port == port) {
            p.owned = p.owned.saturating_sub(1);
        }
        self.unpeer(conn.peer());
        self.drop_socket(sockets, conn.handle());
    }

    /// Drops half-open connection `h`: recorded as reset, its socket freed.
    fn forget(
        &mut self,
        sockets: &mut SocketSet<'static>,
        recent: &mut RecentConnections,
        mut h: HalfOpen,
        now: Instant,
    ) {
        h.conn.follow_mut().end(recent, Ending::Reset, millis(now));
        let port = &mut self.ports[h.port];
        port.half_open = port.half_open.saturating_sub(1);
        self.unpeer(h.conn.peer());
        self.drop_socket(sockets, h.conn.handle());
    }

    /// Removes a socket from the set, without a word to its peer (a socket
    /// that leaves the set transmits nothing, not even a reset), keeping
    /// its loss-recovery counts for `/stats`.
    fn drop_socket(&mut self, sockets: &mut SocketSet<'static>, handle: SocketHandle) {
        if let Socket::Tcp(tcp) = sockets.remove(handle) {
            crate::loss::add(&mut self.retired_tcp, &tcp.recovery_counters());
            self.departures.note(&tcp);
        }
    }

    /// Hands `table` the connections freed in TIME-WAIT since the last call (once per step).
    pub fn hand_over_time_wait(&mut self, table: &mut TimeWaitTable, now: Instant) {
        self.departures.hand_over(table, now);
    }

    fn unpeer(&mut self, peer: Option<IpAddress>) {
        if let Some(a) = peer
            && let Some(n) = self.peers.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&a);
            }
        }
    }

    /// The pool's numbers for `/stats`.
    pub fn stats(&self) -> PoolStats {
        let owned: usize = self.ports.iter().map(|p| p.owned + p.accepted.len()).sum();
        PoolStats {
            listening: (self.ports.len() * LISTENERS_PER_PORT) as u64,
            half_open: self.half_open.len() as u64,
            established: owned as u64,
            limit: self.limits.max_conns as u64,
            queued: self.queue.len() as u64,
            syn_dropped_full: self.syn_dropped_full,
            half_open_evicted: self.half_open_evicted,
            per_peer_refused: self.per_peer_refused,
            retired_tcp: self.retired_tcp,
        }
    }

    /// Sockets the pool may hold at once: every connection and listener.
    pub fn capacity(limits: Limits, ports: usize) -> usize {
        limits.max_conns + ports * LISTENERS_PER_PORT
    }
}

fn trace_drop(spec: &PortSpec, remote: Option<IpEndpoint>, why: &str) {
    if let Some(remote) = remote {
        log::trace!(target: trace::TARGET, "-- pool    {} {remote} dropped: {why}", spec.app);
    }
}
