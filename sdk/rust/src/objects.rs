//! Helpers for reading Kubernetes objects held as JSON: labels, annotations, and the pod spec
//! inside a Pod or a workload's pod template.

use std::collections::BTreeMap;

use serde_json::Value;

fn string_map(object: &Value, field: &str) -> BTreeMap<String, String> {
    object
        .pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.labels` of an object.
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    string_map(object, "labels")
}

/// `metadata.annotations` of an object.
pub fn annotations(object: &Value) -> BTreeMap<String, String> {
    string_map(object, "annotations")
}

/// Sets `metadata.labels[key] = value`, creating `metadata` and `labels` where missing.
pub fn set_label(object: &mut Value, key: &str, value: &str) {
    set_in_metadata_map(object, "labels", key, value)
}

/// Sets `metadata.annotations[key] = value`, creating `metadata` and `annotations` where missing.
pub fn set_annotation(object: &mut Value, key: &str, value: &str) {
    set_in_metadata_map(object, "annotations", key, value)
}

fn set_in_metadata_map(object: &mut Value, field: &str, key: &str, value: &str) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !metadata.is_object() {
        *metadata = Value::Object(Default::default());
    }
    let map = metadata
        .as_object_mut()
        .expect("made an object above")
        .entry(field)
        .or_insert_with(|| Value::Object(Default::default()));
    if !map.is_object() {
        *map = Value::Object(Default::default());
    }
    map.as_object_mut()
        .expect("made an object above")
        .insert(key.to_owned(), Value::String(value.to_owned()));
}

/// Where the pod spec sits in objects of `kind`, as a JSON pointer: `/spec` for a Pod,
/// `/spec/template/spec` for Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and
/// ReplicationControllers, `/spec/jobTemplate/spec/template/spec` for CronJobs; `None` otherwise.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController"
        | "PodTemplate" => Some(if kind == "PodTemplate" {
            "/template/spec"
        } else {
            "/spec/template/spec"
        }),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The pod spec inside an object of `kind` (see [`pod_spec_pointer`]).
pub fn pod_spec<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    object.pointer(pod_spec_pointer(kind)?)
}

/// Metadata of the pod (template) inside an object of `kind`: `/metadata` for a Pod, the template's otherwise.
pub fn pod_metadata<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    let spec = pod_spec_pointer(kind)?;
    let metadata = format!("{}/metadata", spec.strip_suffix("/spec").unwrap_or(""));
    object.pointer(&metadata)
}

/// Which list of a pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    Regular,
    Ephemeral,
}

impl ContainerKind {
    /// The pod spec field holding this kind of container.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Init => "initContainers",
            ContainerKind::Regular => "containers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// Every container of a pod spec (init, regular, then ephemeral), with its kind.
pub fn containers(pod_spec: &Value) -> impl Iterator<Item = (ContainerKind, &Value)> {
    [
        ContainerKind::Init,
        ContainerKind::Regular,
        ContainerKind::Ephemeral,
    ]
    .into_iter()
    .flat_map(move |kind| {
        pod_spec
            .get(kind.field())
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(move |c| (kind, c))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_pod_spec_of_each_workload_kind() {
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}}});
        assert_eq!(pod_spec("CronJob", &cron), Some(&json!({"containers": []})));
        assert_eq!(
            pod_metadata("CronJob", &cron),
            Some(&json!({"labels": {"a": "b"}}))
        );
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert_eq!(pod_metadata("Pod", &pod), Some(&json!({"name": "p"})));
        assert_eq!(pod_spec("ConfigMap", &pod), None);
    }

    #[test]
    fn lists_containers_of_every_kind_in_order() {
        let spec = json!({"containers": [{"name": "app"}], "initContainers": [{"name": "init"}], "ephemeralContainers": [{"name": "debug"}]});
        let names: Vec<_> = containers(&spec)
            .map(|(k, c)| (k, c["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                (ContainerKind::Init, "init"),
                (ContainerKind::Regular, "app"),
                (ContainerKind::Ephemeral, "debug")
            ]
        );
    }

    #[test]
    fn sets_a_label_on_an_object_without_metadata() {
        let mut object = json!({"kind": "ConfigMap"});
        set_label(&mut object, "team", "a");
        assert_eq!(labels(&object).get("team").map(String::as_str), Some("a"));
    }
}
