//! # corbel-sdk: write Corbel admission policies in Rust
//!
//! A Corbel policy is a WebAssembly component that the Corbel host calls for each Kubernetes
//! admission request of a binding. This crate hides the WIT bindings: you implement [`Policy`] on a
//! type, name your settings type, and export it with [`export_policy!`].
//!
//! ```no_run
//! use corbel_sdk::{export_policy, Policy, Request, Verdict, Error};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, Default)]
//! struct Settings { team_label: String }
//!
//! struct RequireTeam;
//!
//! impl Policy for RequireTeam {
//!     type Settings = Settings;
//!
//!     fn validate_settings(settings: &Settings) -> Result<(), String> {
//!         if settings.team_label.is_empty() { return Err("team_label must not be empty".into()) }
//!         Ok(())
//!     }
//!
//!     fn validate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
//!         match request.labels().get(&settings.team_label) {
//!             Some(_) => Ok(Verdict::allow()),
//!             None => Ok(Verdict::deny(format!("missing label {:?}", settings.team_label))),
//!         }
//!     }
//! }
//!
//! export_policy!(RequireTeam);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (crate type `cdylib`): the output is
//! already a component the host loads. Unit-test the same logic with plain `cargo test` on your
//! machine's target: build requests with [`Request::builder`] or [`Request::from_review_json`].
//!
//! Optional feature `k8s`: typed objects through `k8s-openapi` ([`Request::object_as`] works with
//! any `serde` type either way).

mod capabilities;
pub mod controller;
pub mod crd;
mod error;
pub mod http;
pub mod log;
pub mod objects;
mod request;
mod verdict;

pub use error::Error;
pub use log::check;
pub use request::{
    GroupVersionKind, GroupVersionResource, Operation, Request, RequestBuilder, UserInfo,
};
pub use verdict::Verdict;

pub use capabilities::{CapabilityError, resources, secrets};
pub use controller::{Controller, Object, Outcome, ReconcileError};

/// The WIT version this SDK implements, e.g. `0.1.0` for `corbel:plugin@0.1.0`.
pub const WIT_VERSION: &str = "0.1.0";

/// An admission policy. Every function is called in a fresh sandbox: keep no state between calls.
pub trait Policy {
    /// The binding's settings, parsed from the JSON the operator configured (`{}` when none).
    type Settings: serde::de::DeserializeOwned;

    /// Called once when a binding loads. Return an error to refuse the settings; the binding then
    /// fails to load with your message.
    fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }

    /// Decides whether the request is admitted. Return `Err` only when the request cannot be
    /// evaluated at all; the binding's failure policy then decides. A denial is `Ok(Verdict::deny(..))`.
    fn validate(request: &Request, settings: &Self::Settings) -> Result<Verdict, Error>;

    /// Like [`Policy::validate`], and may return the changed object with [`Verdict::mutate`].
    /// The default refuses: a policy that does not override it can only be bound in validate mode.
    fn mutate(_request: &Request, _settings: &Self::Settings) -> Result<Verdict, Error> {
        Err(Error::new(
            "this policy does not mutate: bind it in validate mode",
        ))
    }
}

/// Exports a [`Policy`] implementation as the component's `corbel:plugin/admission` interface.
/// Use it once per plugin crate, at the crate root.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        // Only a Wasm build exports anything: on a native target (unit tests) the export names,
        // which hold `:` and `/`, are not valid symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __CorbelExportedPolicy = $crate::__private::Adapter<$policy>;
            $crate::__private::__export_policy_world!(__CorbelExportedPolicy with_types_in $crate::__private::bindings);
        };
    };
}

extern crate self as corbel_sdk;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    #[cfg(feature = "controller")]
    pub use crate::bindings::__export_controller_world;
    #[cfg(not(feature = "controller"))]
    pub use crate::bindings::__export_policy_world;

    #[doc(hidden)]
    pub mod bindings {
        pub use crate::bindings::*;
    }

    #[cfg(feature = "controller")]
    pub use crate::controller_glue::ControllerAdapter;

    use crate::bindings::exports::corbel::plugin::admission as wit;
    use crate::{Policy, Request};

    /// Connects a [`Policy`] to the generated guest trait.
    pub struct Adapter<P>(core::marker::PhantomData<P>);

    fn settings<P: Policy>(json: &str) -> Result<P::Settings, String> {
        serde_json::from_str(json).map_err(|e| format!("invalid settings: {e}"))
    }

    impl<P: Policy> wit::Guest for Adapter<P> {
        fn validate_settings(settings: String) -> Result<(), String> {
            P::validate_settings(&self::settings::<P>(&settings)?)
        }

        fn validate(
            request: wit::AdmissionRequest,
            settings: String,
        ) -> Result<wit::AdmissionResponse, String> {
            let settings = self::settings::<P>(&settings)?;
            let request = Request::from_wit(request).map_err(|e| e.to_string())?;
            let answer = P::validate(&request, &settings);
            crate::log::flush_checks(!matches!(&answer, Ok(v) if v.is_allowed()));
            answer.map(|v| v.into_wit(false)).map_err(|e| e.to_string())
        }

        fn mutate(
            request: wit::AdmissionRequest,
            settings: String,
        ) -> Result<wit::AdmissionResponse, String> {
            let settings = self::settings::<P>(&settings)?;
            let request = Request::from_wit(request).map_err(|e| e.to_string())?;
            let answer = P::mutate(&request, &settings);
            crate::log::flush_checks(!matches!(&answer, Ok(v) if v.is_allowed()));
            answer.map(|v| v.into_wit(true)).map_err(|e| e.to_string())
        }
    }
}

#[cfg(feature = "controller")]
mod controller_glue;

// One world per build: a crate is a policy or (with the `controller` feature) a controller.
// Both worlds put `log`, `types` and the `admission` export at the same paths, so the rest of
// the SDK is the same code for both.
#[cfg(not(feature = "controller"))]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        runtime_path: "::corbel_sdk::__private::wit_bindgen::rt",
    });
}

#[cfg(feature = "controller")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "controller",
        pub_export_macro: true,
        export_macro_name: "__export_controller_world",
        runtime_path: "::corbel_sdk::__private::wit_bindgen::rt",
    });
}
