//! The Corbel host: serves Kubernetes admission webhooks whose decisions come from sandboxed
//! WebAssembly components.
//!
//! | module | what lives there |
//! | --- | --- |
//! | [`runtime`] | the wasmtime engine, limits, loading a plugin, one binding module per WIT version |
//! | [`admission`] | `evaluate()`: one AdmissionRequest through one binding, with no knowledge of HTTP |
//! | [`api`] | the HTTPS server: thin handlers for webhooks, health, readiness and metrics |
//! | [`registry`] | plugins from OCI registries: push, install, signatures, lock file, the compile cache |
//! | [`store`] | the embedded store: Kubernetes objects in redb, resourceVersions, watches |
//! | [`tls`] | serving certificates: files reloaded on change, or a development CA |
//! | [`config`] | the configuration file |
//! | [`telemetry`] | logging and Prometheus metrics |
//! | [`cli`] | the `corbel` command line |
//! | [`xds`] | serving the `XdsSnapshot`s plugins publish to Envoy over ADS ([`corbel_xds`]) |

pub mod admission;
pub mod api;
pub mod auth;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod kubeapi;
pub mod reconcile;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod xds;
