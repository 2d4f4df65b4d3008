//! A controller for the engine's tests. It reconciles `Probe` objects (`test.corbel.dev/v1`) and
//! does what each one's spec asks, reporting every result in status, so a test can check the
//! engine and each capability end to end:
//!
//! ```yaml
//! spec:
//!   message: hello                 # copied to status.echo
//!   secret: {namespace: ns, name: creds, key: token}   # status.secret: the value, or the error
//!   child: true                    # create (or keep) a ConfigMap `<name>-child`; status.child
//!   readConfigMap: other           # status.read: a ConfigMap's data.value, or the error
//!   fetch: http://127.0.0.1:PORT/x # status.fetch: "<status> <body>", or the error
//!   fail: transient|permanent|trap|loop|oom   # fail in the given way
//!   blockCleanup: true             # cleanup fails permanently while this is set
//! ```

use corbel_sdk::controller::{Event, Status};
use corbel_sdk::{
    Controller, GroupVersionKind, Object, Outcome, ReconcileError, export_controller, http,
    resources, secrets,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    message: String,
    secret: Option<SecretRef>,
    #[serde(default)]
    child: bool,
    read_config_map: Option<String>,
    fetch: Option<String>,
    fail: Option<String>,
    #[serde(default)]
    block_cleanup: bool,
}

#[derive(Deserialize)]
struct SecretRef {
    namespace: Option<String>,
    name: String,
    key: String,
}

#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    prefix: String,
}

struct Probe;

fn config_map() -> GroupVersionKind {
    GroupVersionKind {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
    }
}

impl Controller for Probe {
    type Settings = Settings;

    const MANIFEST: &'static str = r#"
reconciles:
  - apiVersion: test.corbel.dev/v1
    kind: Probe
    owns: [{apiVersion: v1, kind: ConfigMap}]
capabilities:
  secrets: true
  http: true
  resources:
    read: [{apiVersion: v1, kind: ConfigMap}]
    write: [{apiVersion: v1, kind: ConfigMap}]
"#;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.prefix.len() > 10 {
            return Err("prefix must be at most 10 characters".into());
        }
        Ok(())
    }

    fn reconcile(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        let spec: Spec = object.spec()?;
        match spec.fail.as_deref() {
            Some("transient") => {
                return Err(ReconcileError::transient(
                    "ProbeTransient",
                    "asked to fail transiently",
                ));
            }
            Some("permanent") => {
                return Err(ReconcileError::permanent(
                    "ProbePermanent",
                    "asked to fail permanently",
                ));
            }
            Some("trap") => panic!("asked to trap"),
            Some("loop") => loop {
                std::hint::black_box(());
            },
            Some("oom") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                }
            }
            _ => {}
        }
        let mut status = json!({"echo": format!("{}{}", settings.prefix, spec.message)});
        if let Some(secret) = &spec.secret {
            status["secret"] = match secrets::get(secret.namespace.as_deref(), &secret.name) {
                Ok(data) => match data.get(&secret.key) {
                    Some(value) => Value::String(String::from_utf8_lossy(value).into_owned()),
                    None => Value::String(format!("no key {}", secret.key)),
                },
                Err(e) => Value::String(e.to_string()),
            };
        }
        if let Some(name) = &spec.read_config_map {
            status["read"] = match resources::get(&config_map(), None, name) {
                Ok(Some(cm)) => cm["data"]["value"].clone(),
                Ok(None) => Value::String("absent".into()),
                Err(e) => Value::String(e.to_string()),
            };
        }
        let mut outcome = Outcome::default();
        if spec.child {
            let name = format!("{}-child", object.name());
            let existing = resources::get(&config_map(), None, &name)?;
            let data = json!({"message": spec.message});
            let child = match existing {
                Some(mut cm) if cm["data"] != data => {
                    cm["data"] = data;
                    resources::update(&cm)?
                }
                Some(cm) => cm,
                None => {
                    let created = resources::create(&json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name}, "data": data,
                    }))?;
                    outcome = outcome.event(Event::normal(
                        "ChildCreated",
                        "Create",
                        format!("created ConfigMap {name}"),
                    ));
                    created
                }
            };
            status["child"] = child["metadata"]["name"].clone();
        }
        if let Some(url) = &spec.fetch {
            status["fetch"] = match http::send(&http::Request::new("GET", url)) {
                Ok(r) => {
                    Value::String(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
                }
                Err(e) => Value::String(e.to_string()),
            };
        }
        Ok(outcome
            .status(status)
            .condition("Probed", Status::True, "Done", "every probe ran"))
    }

    fn cleanup(object: &Object, _settings: &Settings) -> Result<Outcome, ReconcileError> {
        let spec: Spec = object.spec()?;
        if spec.block_cleanup {
            return Err(ReconcileError::permanent(
                "CleanupBlocked",
                "blockCleanup is set",
            ));
        }
        Ok(Outcome::default())
    }
}

export_controller!(Probe);
