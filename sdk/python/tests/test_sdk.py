"""The SDK's helpers on plain CPython: `python -m unittest discover sdk/python/tests`."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corbel_sdk import allow, deny, labels, set_label, warn  # noqa: E402
from corbel_sdk import settings as s  # noqa: E402
from corbel_sdk.settings import SettingsError, parse_settings  # noqa: E402

LABELS = s.obj(labels=s.list_of(s.string()))


def refusal(schema, text):
    try:
        parse_settings(schema, text)
    except SettingsError as e:
        return str(e)
    return None


class SettingsAreRefusedWithSerdesWords(unittest.TestCase):
    def test_reads_settings_that_fit(self):
        self.assertEqual(parse_settings(LABELS, '{"labels": ["team"]}'), {"labels": ["team"]})

    def test_names_a_missing_field(self):
        self.assertEqual(refusal(LABELS, "{}"), "invalid settings: missing field `labels`")

    def test_names_an_unknown_field_and_the_expected_ones(self):
        self.assertEqual(refusal(LABELS, '{"labels": [], "x": 1}'), "invalid settings: unknown field `x`, expected `labels`")
        two = s.obj(a=s.string(), b=s.string())
        self.assertEqual(refusal(two, '{"c": 1}'), "invalid settings: unknown field `c`, expected one of `a`, `b`")

    def test_names_the_type_it_got(self):
        self.assertEqual(refusal(LABELS, '{"labels": "team"}'), 'invalid settings: invalid type: string "team", expected a sequence')
        self.assertEqual(refusal(LABELS, '{"labels": [true]}'), "invalid settings: invalid type: boolean `true`, expected a string")

    def test_gives_optional_fields_their_default(self):
        self.assertEqual(parse_settings(s.obj(mode=s.optional(s.string(), "warn")), "{}"), {"mode": "warn"})


class ObjectsAndVerdicts(unittest.TestCase):
    def test_labels_of_an_object_without_metadata_are_empty(self):
        self.assertEqual(labels({"kind": "ConfigMap"}), {})
        self.assertEqual(labels({"metadata": {"labels": None}}), {})

    def test_set_label_creates_what_is_missing(self):
        self.assertEqual(set_label({}, "team", "a"), {"metadata": {"labels": {"team": "a"}}})

    def test_verdicts(self):
        self.assertTrue(allow().allowed)
        self.assertEqual(deny("no").message, "no")
        self.assertEqual(warn("careful").warnings, ["careful"])


if __name__ == "__main__":
    unittest.main()
