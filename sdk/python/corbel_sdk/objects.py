"""Helpers for Kubernetes objects held as plain JSON values (dicts)."""

from __future__ import annotations

from typing import Any, Iterator

JsonObject = dict[str, Any]


def _string_map(obj: Any, field: str) -> dict[str, str]:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    values = metadata.get(field) if isinstance(metadata, dict) else None
    if not isinstance(values, dict):
        return {}
    # Only string values count, as in the Rust SDK: Kubernetes labels are always strings.
    return {k: v for k, v in values.items() if isinstance(v, str)}


def labels(obj: Any) -> dict[str, str]:
    """``metadata.labels`` of an object (``{}`` when it has none)."""
    return _string_map(obj, "labels")


def annotations(obj: Any) -> dict[str, str]:
    """``metadata.annotations`` of an object (``{}`` when it has none)."""
    return _string_map(obj, "annotations")


def _set_in(obj: JsonObject, field: str, key: str, value: str) -> JsonObject:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = obj["metadata"] = {}
    values = metadata.get(field)
    if not isinstance(values, dict):
        values = metadata[field] = {}
    values[key] = value
    return obj


def set_label(obj: JsonObject, key: str, value: str) -> JsonObject:
    """Sets ``metadata.labels[key] = value`` in place, creating what is missing."""
    return _set_in(obj, "labels", key, value)


def set_annotation(obj: JsonObject, key: str, value: str) -> JsonObject:
    """Sets ``metadata.annotations[key] = value`` in place, creating what is missing."""
    return _set_in(obj, "annotations", key, value)


_POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_spec(kind: str, obj: Any) -> JsonObject | None:
    """The pod spec inside an object of ``kind`` (a Pod or a workload's pod template)."""
    node = obj
    for key in _POD_SPEC_PATHS.get(kind, ()):
        node = node.get(key) if isinstance(node, dict) else None
    return node if kind in _POD_SPEC_PATHS and isinstance(node, dict) else None


def containers(spec: JsonObject | None) -> Iterator[tuple[str, JsonObject]]:
    """Every container of a pod spec, init then regular then ephemeral, with its kind."""
    for kind, field in (("init", "initContainers"), ("regular", "containers"), ("ephemeral", "ephemeralContainers")):
        for container in (spec or {}).get(field) or []:
            yield kind, container
