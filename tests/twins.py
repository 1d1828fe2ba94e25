"""The two implementations of the histogram helpers, as a fixture: tests that take ``twin`` run on both."""

from __future__ import annotations

import pytest

from mapreduce import histsum, telemetry

try:
    from mapreduce import _histsum  # built in place by `pip install -e .` (make test) where there is a compiler
except ImportError:
    _histsum = None

requires_c = pytest.mark.skipif(_histsum is None, reason="the C extension is not built (no compiler at install)")


@pytest.fixture(params=[pytest.param("C", marks=requires_c), "Python"])
def twin(request, monkeypatch):
    """The C extension or its Python twin, also put in place of the one mapreduce.telemetry uses: every test
    that takes it runs on both, and on a machine without a compiler still runs on the Python twin."""
    module = _histsum if request.param == "C" else histsum
    monkeypatch.setattr(telemetry, "histograms_of", module.histograms_of)
    monkeypatch.setattr(telemetry, "merge_sets", module.merge_sets)
    monkeypatch.setattr(telemetry, "merge_compact", module.merge_packed)
    return module
