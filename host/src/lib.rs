//! The Corbel host: serves Kubernetes admission webhooks whose decisions come from sandboxed
//! WebAssembly components, and runs controller plugins. This crate is the binary's: it wires the
//! rooms, each a crate of its own under `host/crates/` (see `docs/architecture.md`), and holds
//! what only the binary needs.
//!
//! | module | what lives there |
//! | --- | --- |
//! | [`api`] | the HTTPS server: thin handlers for webhooks, health, readiness and metrics |
//! | [`tls`] | serving certificates: files reloaded on change, or a development CA |
//! | [`config`] | the configuration file (each room's section is typed in its own crate) |
//! | [`cli`] | the `corbel` command line |
//! | [`xds`] | serving the `XdsSnapshot`s plugins publish to Envoy over ADS ([`corbel_xds`]) |
//!
//! The rooms, re-exported under their old module names:
//!
//! | module | crate | what lives there |
//! | --- | --- | --- |
//! | [`runtime`], [`capabilities`] | `corbel-runtime` | the wasmtime engine, limits, loading a plugin, WIT bindings; the host side of each capability |
//! | [`store`] | `corbel-store` | the embedded store: Kubernetes objects in redb, resourceVersions, watches |
//! | [`auth`] | `corbel-auth` | tokens, OIDC and RBAC-shaped rules for the embedded API |
//! | [`registry`] | `corbel-registry` | plugins from OCI registries: push, install, signatures, lock file, compile cache |
//! | [`admission`] | `corbel-admission` | one AdmissionRequest through one binding; the binding set and its configuration |
//! | [`telemetry`] | `corbel-telemetry` | logging, Prometheus metrics, and the health every room reports to |
//! | [`kubeapi`] | `corbel-kubeapi` | the embedded Kubernetes API server over the store, with inline admission |
//! | [`reconcile`] | `corbel-reconcile` | controller plugins' loops, leader election, the `Plugin` kind |

pub use corbel_admission as admission;
pub use corbel_auth as auth;
pub use corbel_kubeapi as kubeapi;
pub use corbel_reconcile as reconcile;
pub use corbel_registry as registry;
pub use corbel_runtime as runtime;
pub use corbel_runtime::capabilities;
pub use corbel_store as store;
pub use corbel_telemetry as telemetry;

pub mod api;
pub mod cli;
pub mod config;
pub mod tls;
pub mod xds;
