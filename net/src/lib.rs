//! Skiff's network side: the pieces between the driver and the apps.
//!
//! It sees frames and time, never PCI or device registers: the kernel hands it
//! a device (anything implementing [`device::NetDevice`]) and a clock.
//!
//! - [`phy`]: smoltcp's `Device` over a `NetDevice`, lending frames in place.
//! - [`stack`]: the interface (DHCP with a static fallback, IPv6 link-local),
//!   the sockets, and one bounded poll step.
//! - [`apps`]: TCP echo (port 7) and HTTP/1.1 (port 80).
//! - [`pool`]: the connection pool: listeners, the accept queue, limits.
//! - [`sockets`]: the apps' TCP sockets: set-up, connections, states.
//! - [`stats`]: `/stats`, rendered from plain data (the kernel's [`stats::HostStats`] and the stack's).
//! - [`rx_check`]: names and counts the frames smoltcp would drop silently.
//! - [`loss`]: loss recovery on a damaged link, what is asked of smoltcp.
//! - [`time_wait`]: TIME-WAIT records that answer a retransmitted FIN without a socket.
//! - [`checksum`], [`seed`], [`json`], [`config`]: the small pieces they need.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
// `testlink::capture` keeps each test thread's trace lines (thread-local).
#[cfg(all(feature = "testing", not(test)))]
extern crate std;

pub mod apps;
pub mod checksum;
pub mod config;
pub mod device;
pub mod json;
pub mod loss;
pub mod phy;
pub mod pool;
pub mod recent;
pub mod room;
pub mod rx_check;
pub mod seed;
pub mod sockets;
pub mod stack;
pub mod stats;
pub mod time_wait;
pub mod trace;

#[cfg(any(test, feature = "testing"))]
pub mod testlink;
