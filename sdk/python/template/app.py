"""{{name}}: denies CREATE and UPDATE of objects that miss the label named in the settings."""

from typing import Any

from corbel_sdk import Policy, Request, Verdict, allow, deny, export
from corbel_sdk import settings as s


class RequireLabel(Policy):
    settings = s.obj(label=s.string())

    def validate_settings(self, settings: dict[str, Any]) -> None:
        if not settings["label"].strip():
            raise ValueError('`label` is blank: name a label key, e.g. {"label": "team"}')

    def validate(self, request: Request, settings: dict[str, Any]) -> Verdict:
        if request.operation not in ("CREATE", "UPDATE"):
            return allow()
        if settings["label"] in request.labels():
            return allow()
        return deny(f"missing required label: {settings['label']}")


Admission = export(RequireLabel)
