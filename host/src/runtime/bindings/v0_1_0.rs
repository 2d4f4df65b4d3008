//! Host bindings for `corbel:plugin@0.1.0` (`wit/v0.1.0`).

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "policy",
    imports: { default: tracing },
    exports: { default: async },
});

pub use self::corbel::plugin::log::Level;
pub use self::corbel::plugin::types::{
    Field, GroupVersionKind, GroupVersionResource, UserExtra, UserInfo,
};
pub use exports::corbel::plugin::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::runtime::Sandbox;

impl self::corbel::plugin::types::Host for Sandbox {}

impl self::corbel::plugin::log::Host for Sandbox {
    fn log(&mut self, level: Level, message: String, fields: Vec<Field>) {
        self.log_record(level, &message, &fields);
    }
}
