//! Exports `corbel:plugin/admission@0.2.0`, a version the host does not support (see `wit/future.wit`).

wit_bindgen::generate!({ path: "wit", world: "policy" });

struct Future;

impl exports::corbel::plugin::admission::Guest for Future {
    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
