//! PCI: addressing functions and reaching their configuration space.
//!
//! Ref: PCI Local Bus Specification 3.0, 3.2.2.3.2 (configuration mechanism #1)
//! and PCI Express Base Specification, 7.2.2 (ECAM).

mod address;

pub use address::{InvalidAddress, PciAddress};
