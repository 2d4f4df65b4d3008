"""corbel_sdk: Corbel admission policies in Python.

Subclass :class:`Policy`, give it a settings schema, and export it from your ``app.py``::

    from corbel_sdk import Policy, Request, Verdict, allow, deny, export, settings as s

    class RequireTeam(Policy):
        settings = s.obj(label=s.string())

        def validate(self, request: Request, settings: dict) -> Verdict:
            return allow() if settings["label"] in request.labels() else deny("no team label")

    Admission = export(RequireTeam)

``sdk/python/build.py`` turns the app into a component with componentize-py. Every call runs in a
fresh sandbox: keep no state between calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from . import settings
from .objects import annotations, containers, labels, pod_spec, set_annotation, set_label
from .settings import Schema, SettingsError, parse_settings

WIT_VERSION = "0.1.0"
"""The WIT version this SDK implements (``corbel:plugin@0.1.0``)."""


@dataclass
class Verdict:
    """A policy's answer. Build one with :func:`allow`, :func:`deny`, :func:`warn` or :func:`mutate`."""

    allowed: bool
    message: Optional[str] = None
    code: Optional[int] = None
    warnings: list[str] = field(default_factory=list)
    mutated_object: Optional[Any] = None

    def with_warning(self, warning: str) -> "Verdict":
        """Adds a warning, shown to the user whether or not the request is admitted."""
        self.warnings.append(str(warning))
        return self

    def with_code(self, code: int) -> "Verdict":
        """Sets the HTTP status code of a denial (403 when not set)."""
        self.code = code
        return self


def allow() -> Verdict:
    """Admit the request unchanged."""
    return Verdict(True)


def deny(message: str) -> Verdict:
    """Refuse the request; ``message`` is what kubectl shows the user."""
    return Verdict(False, str(message))


def warn(warning: str) -> Verdict:
    """Admit the request with a warning."""
    return allow().with_warning(warning)


def mutate(obj: Any) -> Verdict:
    """Admit with ``obj`` in place of the submitted object; the host computes the JSON Patch.
    A ``mutate`` method may also return the changed object itself."""
    return Verdict(True, mutated_object=obj)


def _parse(what: str, text: Optional[str]) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"the request's {what} is not JSON: {e}") from None


@dataclass
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass
class GroupVersionResource:
    group: str
    version: str
    resource: str


@dataclass
class UserInfo:
    username: str = ""
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Request:
    """One admission request, with its objects parsed. ``operation`` is spelled as Kubernetes
    spells it: ``CREATE``, ``UPDATE``, ``DELETE`` or ``CONNECT``."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    operation: str
    sub_resource: Optional[str] = None
    namespace: Optional[str] = None
    name: Optional[str] = None
    object: Optional[Any] = None
    old_object: Optional[Any] = None
    user_info: UserInfo = field(default_factory=UserInfo)
    dry_run: bool = False
    options: Optional[Any] = None

    @staticmethod
    def from_wit(r: Any) -> "Request":
        """From the generated ``wit_world.exports.admission.AdmissionRequest``."""
        return Request(
            uid=r.uid,
            kind=GroupVersionKind(r.kind.group, r.kind.version, r.kind.kind),
            resource=GroupVersionResource(r.resource.group, r.resource.version, r.resource.resource),
            operation=r.operation.name,
            sub_resource=r.sub_resource,
            namespace=r.namespace,
            name=r.name,
            object=_parse("object", r.object),
            old_object=_parse("oldObject", r.old_object),
            user_info=UserInfo(
                r.user_info.username,
                r.user_info.uid,
                list(r.user_info.groups),
                {e.key: list(e.values) for e in r.user_info.extra},
            ),
            dry_run=r.dry_run,
            options=_parse("options", r.options),
        )

    def subject(self) -> Any:
        """The object the request is about: the new object, or on DELETE the old one."""
        return self.object if self.object is not None else self.old_object

    def labels(self) -> dict[str, str]:
        """Labels of :meth:`subject` (``{}`` when it has none)."""
        return labels(self.subject())

    def annotations(self) -> dict[str, str]:
        """Annotations of :meth:`subject` (``{}`` when it has none)."""
        return annotations(self.subject())


class Policy:
    """An admission policy. Override :meth:`validate`, and :meth:`validate_settings` and
    :meth:`mutate` as needed; set ``settings`` to a schema (or leave it ``None`` for raw JSON)."""

    settings: ClassVar[Optional[Schema[Any]]] = None

    def validate_settings(self, settings: Any) -> None:
        """Called once when a binding loads. Raise (any exception) to refuse the settings."""

    def validate(self, request: Request, settings: Any) -> Verdict:
        raise NotImplementedError("validate is not implemented")

    def mutate(self, request: Request, settings: Any) -> Any:
        """Like :meth:`validate`, and may return the changed object (or :func:`mutate`)."""
        raise RuntimeError("this policy does not mutate: bind it in validate mode")


def _response(verdict: Any, mutating: bool) -> Any:
    from wit_world.exports.admission import AdmissionResponse

    if verdict is None:
        verdict = allow()
    if not isinstance(verdict, Verdict):
        if not mutating:
            raise TypeError("validate must return a Verdict (allow(), deny(message), warn(message))")
        verdict = mutate(verdict)
    changed = None
    if mutating and verdict.mutated_object is not None:
        changed = json.dumps(verdict.mutated_object, separators=(",", ":"), ensure_ascii=False)
    return AdmissionResponse(verdict.allowed, verdict.message, verdict.code, list(verdict.warnings), changed)


def export(policy: type[Policy]) -> type:
    """The class componentize-py looks for: assign it to ``Admission`` in your app module."""
    from componentize_py_types import Err

    def call(method: str, mutating: bool):
        def handler(self: Any, request: Any, settings_json: str) -> Any:
            try:
                instance = policy()
                parsed = parse_settings(policy.settings, settings_json)
                return _response(getattr(instance, method)(Request.from_wit(request), parsed), mutating)
            except Exception as e:  # every failure becomes the WIT error, with its message
                raise Err(str(e)) from None

        return handler

    def validate_settings(self: Any, settings_json: str) -> None:
        try:
            policy().validate_settings(parse_settings(policy.settings, settings_json))
        except Exception as e:
            raise Err(str(e)) from None

    return type(
        "Admission",
        (),
        {
            "validate_settings": validate_settings,
            "validate": call("validate", False),
            "mutate": call("mutate", True),
        },
    )


def log(level: str, message: str, **fields: Any) -> None:
    """Writes one record into the host's log: ``log("info", "checked", kind="Pod")``."""
    from wit_world.imports import log as wit_log
    from wit_world.imports.types import Field

    wit_log.log(
        wit_log.Level[level.upper()],
        message,
        [Field(k, str(v)) for k, v in fields.items()],
    )


def check(name: str, passed: bool, detail: str = "") -> bool:
    """Records a named check and its result, and returns ``passed``: when the host traces the
    request (``corbel eval --trace``, a binding with ``trace: true``), a denial names the checks
    that failed ("why denied", docs/trace.md). Sent as a debug log record of the reserved message
    ``corbel.check``."""
    from wit_world.imports import log as wit_log
    from wit_world.imports.types import Field

    value = ("pass" if passed else "fail") + (f": {detail}" if detail else "")
    wit_log.log(wit_log.Level.DEBUG, "corbel.check", [Field(str(name), value)])
    return passed


__all__ = [
    "WIT_VERSION", "check", "Verdict", "allow", "deny", "warn", "mutate", "Request", "GroupVersionKind",
    "GroupVersionResource", "UserInfo", "Policy", "export", "log", "settings", "Schema",
    "SettingsError", "labels", "annotations", "set_label", "set_annotation", "pod_spec",
    "containers",
]
