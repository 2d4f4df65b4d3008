//! One module per supported WIT version of `corbel:plugin`. Each converts its own types to and from
//! the newest version's, which the rest of the host uses; adding `v0_2_0.rs` leaves `v0_1_0.rs` as it is.

pub mod v0_1_0;

/// The newest supported version: the types the rest of the host speaks.
pub use v0_1_0 as latest;

/// Every `corbel:plugin` version this host loads, newest first.
pub const SUPPORTED: &[&str] = &["0.1.0"];
