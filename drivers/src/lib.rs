//! Skiff's device drivers: PCI enumeration, virtio-net, and the TSC's rate
//! (from CPUID where the CPU tells, else measured against the PIT).
//!
//! The crate builds on `virtio-drivers`: its PCI bus types and modern PCI
//! transport, its `Transport` and `Hal` traits. Skiff adds what that crate
//! lacks for a network card that must be fast and must survive a buggy
//! device: a port-I/O PCI configuration mechanism, a legacy (I/O BAR) virtio
//! transport, a split virtqueue whose size comes from the device and which
//! checks everything the device writes, and a virtio-net device that
//! negotiates checksum offloads.
//!
//! Hardware is reached only through traits the kernel implements (`Hal` for
//! DMA memory, configuration access, I/O ports), so every driver is tested on
//! the host against fakes. The crate keeps no global state.

#![cfg_attr(not(any(test, feature = "fuzzing")), no_std)]
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod pci;
pub mod pit;
pub mod ports;
pub mod rtc;
pub mod tsc;
pub mod virtio;
