"""require-labels, in Python: denies CREATE and UPDATE of any object that misses one of the listed
labels, naming every missing label. Same settings and messages as plugins/require-labels."""

from typing import Any

from corbel_sdk import Policy, Request, Verdict, allow, deny, export
from corbel_sdk import settings as s


class RequireLabels(Policy):
    settings = s.obj(labels=s.list_of(s.string()))

    def validate_settings(self, settings: dict[str, Any]) -> None:
        labels: list[str] = settings["labels"]
        if not labels:
            raise ValueError('`labels` is empty: list at least one label key, e.g. {"labels": ["team"]}')
        for i, label in enumerate(labels):
            if not label.strip():
                raise ValueError(f"`labels[{i}]` is blank: every entry must be a label key")

    def validate(self, request: Request, settings: dict[str, Any]) -> Verdict:
        if request.operation not in ("CREATE", "UPDATE"):
            return allow()
        present = request.labels()
        missing = [label for label in settings["labels"] if label not in present]
        if not missing:
            return allow()
        return deny("missing required labels: " + ", ".join(missing))


Admission = export(RequireLabels)
