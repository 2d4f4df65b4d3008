//! Corbel's generic xDS server room. It serves, per node group, the resources that controller
//! plugins publish, to Envoy instances over ADS (gRPC, state of the world), with versions, nonces,
//! ACK and NACK. It knows types and versions, never domains: routes, tokens or buckets are the
//! plugins' business (see `docs/xds.md`).
//!
//! - [`Snapshot`]: one node group's resources, converted from proto-JSON ([`convert`]); its
//!   version is a digest of its content, so a restarted host serves the same version for the same
//!   content and connected Envoys see no change.
//! - [`Snapshots`]: the current snapshot per node group, which streams watch.
//! - [`Publications`]: a group's snapshot is the union of every publication (object) naming it,
//!   so a publisher can split its resources over several objects, each small, and a change
//!   rewrites only the objects that changed; a name published twice is reported, not merged.
//! - [`server`]: the ADS service; ACKs and NACKs come out as [`Report`]s for whoever published.
//! - [`api`]: the `XdsSnapshot` kind's types, which its CRD is generated from.

pub mod api;
pub mod convert;
pub mod server;
mod snapshot;

pub use convert::{ConvertError, Converter};
pub use server::{AdsServer, Report};
pub use snapshot::{Duplicate, Publication, Publications, Resource, Snapshot, Snapshots, Union};
