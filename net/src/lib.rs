//! Skiff's network side: the pieces between the driver and the apps.
//!
//! It sees frames and time, never PCI or device registers: the kernel hands it
//! a device and a clock. Today it holds the entropy mixing that seeds the
//! stack; the smoltcp device adapter, interface set-up and the apps (TCP echo,
//! HTTP) come next.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod checksum;
pub mod device;
pub mod seed;
