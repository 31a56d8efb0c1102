//! Skiff's device drivers: PCI enumeration and (next) virtio-net.
//!
//! This crate touches hardware only through small traits that the kernel
//! implements (configuration-space access, DMA memory), so every driver can be
//! tested on the host against fakes. It keeps no global state.

#![cfg_attr(not(test), no_std)]
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod pci;
