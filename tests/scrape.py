"""Read series out of a Prometheus exposition with prometheus-client's own parser, so tests
compare numbers, not strings that a format change or a new label would break."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def series(text: str, sample: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Every ``sample`` (as written, e.g. ``cityorder_deadletters_total``) by the values of
    ``labels``, summed over the other labels; zero values left out."""
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                key = tuple(s.labels[name] for name in labels)
                out[key] = out.get(key, 0.0) + s.value
    return {k: v for k, v in out.items() if v}


def undocumented(text: str) -> list[str]:
    """cityorder's metric families in an exposition that docs/monitoring.md does not list (as
    `name` or, for a counter, `name_total`)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    names = {f.name for f in text_string_to_metric_families(text) if f.name.startswith("cityorder_")}
    return sorted(n for n in names if f"`{n}`" not in doc and f"`{n}_total`" not in doc)
