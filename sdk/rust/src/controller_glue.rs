//! Connects a [`Controller`] to the generated `controller` world.

use crate::bindings::exports::corbel::plugin::admission as wit;
use crate::bindings::exports::corbel::plugin::reconciler as rec;
use crate::controller::{Condition, Controller, Object, Outcome, ReconcileError, Status};
use crate::{Request, Verdict};

pub struct ControllerAdapter<C>(core::marker::PhantomData<C>);

fn settings<C: Controller>(json: &str) -> Result<C::Settings, String> {
    serde_json::from_str(json).map_err(|e| format!("invalid settings: {e}"))
}

fn admit<C: Controller>(
    r: wit::AdmissionRequest,
    settings_json: String,
    mutating: bool,
    call: fn(&Request, &C::Settings) -> Result<Verdict, crate::Error>,
) -> Result<wit::AdmissionResponse, String> {
    let settings = settings::<C>(&settings_json)?;
    let request = Request::from_wit(r).map_err(|e| e.to_string())?;
    let answer = call(&request, &settings);
    crate::log::flush_checks(!matches!(&answer, Ok(v) if v.is_allowed()));
    answer
        .map(|v| v.into_wit(mutating))
        .map_err(|e| e.to_string())
}

impl<C: Controller> wit::Guest for ControllerAdapter<C> {
    fn validate_settings(settings: String) -> Result<(), String> {
        C::validate_settings(&self::settings::<C>(&settings)?)
    }

    fn validate(
        r: wit::AdmissionRequest,
        settings: String,
    ) -> Result<wit::AdmissionResponse, String> {
        admit::<C>(r, settings, false, C::validate)
    }

    fn mutate(
        r: wit::AdmissionRequest,
        settings: String,
    ) -> Result<wit::AdmissionResponse, String> {
        admit::<C>(r, settings, true, C::mutate)
    }
}

fn outcome(o: Outcome) -> rec::Outcome {
    rec::Outcome {
        status: o.status.map(|s| s.to_string()),
        conditions: o.conditions.into_iter().map(condition).collect(),
        requeue_after_ms: o.requeue_after.map(|d| d.as_millis() as u64),
        events: o
            .events
            .into_iter()
            .map(|e| rec::Event {
                type_: if e.warning {
                    rec::EventType::Warning
                } else {
                    rec::EventType::Normal
                },
                reason: e.reason,
                action: e.action,
                note: e.note,
            })
            .collect(),
    }
}

fn condition(c: Condition) -> rec::Condition {
    rec::Condition {
        type_: c.type_,
        status: match c.status {
            Status::True => rec::ConditionStatus::True,
            Status::False => rec::ConditionStatus::False,
            Status::Unknown => rec::ConditionStatus::Unknown,
        },
        reason: c.reason,
        message: c.message,
    }
}

fn error(e: ReconcileError) -> rec::ReconcileError {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
    match e {
        ReconcileError::Transient {
            reason,
            message,
            retry_after,
        } => rec::ReconcileError::Transient(rec::Failure {
            reason,
            message,
            retry_after_ms: ms(retry_after),
        }),
        ReconcileError::Permanent {
            reason,
            message,
            retry_after,
        } => rec::ReconcileError::Permanent(rec::Failure {
            reason,
            message,
            retry_after_ms: ms(retry_after),
        }),
    }
}

fn call<C: Controller>(
    object: String,
    settings_json: String,
    f: fn(&Object, &C::Settings) -> Result<Outcome, ReconcileError>,
) -> Result<rec::Outcome, rec::ReconcileError> {
    let settings = settings::<C>(&settings_json)
        .map_err(|e| error(ReconcileError::permanent("InvalidSettings", e)))?;
    let object = Object::parse(&object).map_err(error)?;
    f(&object, &settings).map(outcome).map_err(error)
}

impl<C: Controller> rec::Guest for ControllerAdapter<C> {
    fn manifest() -> String {
        C::MANIFEST.to_owned()
    }

    fn reconcile(object: String, settings: String) -> Result<rec::Outcome, rec::ReconcileError> {
        call::<C>(object, settings, C::reconcile)
    }

    fn cleanup(object: String, settings: String) -> Result<rec::Outcome, rec::ReconcileError> {
        call::<C>(object, settings, C::cleanup)
    }
}
