//! Host bindings for `corbel:plugin@0.1.0` (`wit/v0.1.0`).
//!
//! One `bindgen!` over the `controller` world covers both worlds: `policy` is `controller` without
//! the capability imports and the reconciler export, so a policy is instantiated through the
//! admission export's indices alone (see `runtime::Plugin`).

wasmtime::component::bindgen!({
    path: "../../../wit/v0.1.0",
    world: "controller",
    imports: {
        "corbel:plugin/secrets": async | tracing,
        "corbel:plugin/resources": async | tracing,
        default: tracing,
    },
    exports: { default: async },
});

pub use self::corbel::plugin::log::Level;
pub use self::corbel::plugin::types::{
    CapabilityError, Field, GroupVersionKind, GroupVersionResource, UserExtra, UserInfo,
};
pub use self::corbel::plugin::{resources, secrets};
pub use exports::corbel::plugin::admission::{
    AdmissionRequest, AdmissionResponse, GuestIndices as AdmissionIndices, Operation,
};
pub use exports::corbel::plugin::reconciler::{
    Condition, ConditionStatus, Event, EventType, Failure, Outcome, ReconcileError,
};

use crate::Sandbox;

impl self::corbel::plugin::types::Host for Sandbox {}

impl self::corbel::plugin::log::Host for Sandbox {
    fn log(&mut self, level: Level, message: String, fields: Vec<Field>) {
        self.log_record(level, &message, &fields);
    }
}

/// Links what every plugin imports besides WASI: `types` and `log`.
pub fn add_policy_imports(
    linker: &mut wasmtime::component::Linker<Sandbox>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    self::corbel::plugin::types::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |s| s)?;
    self::corbel::plugin::log::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |s| s)
}
