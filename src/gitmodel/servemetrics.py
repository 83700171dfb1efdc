"""The server's ``/metrics``: requests, errors and a latency histogram by version and stage, in the
Prometheus text exposition format (version 0.0.4), which every Prometheus-compatible scraper reads."""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a small model's few milliseconds to a long generation's tens of seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    def __init__(self, model: str):
        self.model = model
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._errors: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._counts: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, version: str, stage: str, status: int, seconds: float) -> None:
        """One answered request; version and stage are empty for a request refused before routing."""
        with self._lock:
            self._requests[(version, stage, status)] += 1
            if status >= 400:
                self._errors[(version, stage, "server" if status >= 500 else "client")] += 1
            if version:
                key = (version, stage)
                counts = self._buckets.setdefault(key, [0] * len(BUCKETS))
                for i in range(bisect.bisect_left(BUCKETS, seconds), len(BUCKETS)):
                    counts[i] += 1
                self._sums[key] += seconds
                self._counts[key] += 1

    def render(self, routes) -> str:
        m = self.model
        lines = ["# HELP gitmodel_requests_total Requests answered, by version, stage and HTTP status.",
                 "# TYPE gitmodel_requests_total counter"]
        with self._lock:
            for (version, stage, status), n in sorted(self._requests.items()):
                lines.append(f"gitmodel_requests_total{_labels(model=m, version=version, stage=stage, status=str(status))} {n}")
            lines += ["# HELP gitmodel_request_errors_total Requests answered with an error (client: 4xx, server: 5xx).",
                      "# TYPE gitmodel_request_errors_total counter"]
            for (version, stage, kind), n in sorted(self._errors.items()):
                lines.append(f"gitmodel_request_errors_total{_labels(model=m, version=version, stage=stage, kind=kind)} {n}")
            lines += ["# HELP gitmodel_request_latency_seconds Time from request to response, by version and stage.",
                      "# TYPE gitmodel_request_latency_seconds histogram"]
            for (version, stage), counts in sorted(self._buckets.items()):
                for bound, n in zip(BUCKETS, counts):
                    labels = _labels(model=m, version=version, stage=stage, le=_number(bound))
                    lines.append(f"gitmodel_request_latency_seconds_bucket{labels} {n}")
                total = self._counts[(version, stage)]
                labels = _labels(model=m, version=version, stage=stage, le="+Inf")
                lines.append(f"gitmodel_request_latency_seconds_bucket{labels} {total}")
                labels = _labels(model=m, version=version, stage=stage)
                lines.append(f"gitmodel_request_latency_seconds_sum{labels} {self._sums[(version, stage)]:.6f}")
                lines.append(f"gitmodel_request_latency_seconds_count{labels} {total}")
        lines += ["# HELP gitmodel_serving The versions serving now, each valued by the share of traffic it takes.",
                  "# TYPE gitmodel_serving gauge"]
        for arm in routes.arms():
            share = routes.fraction if arm.stage == "canary" else 1.0 - (routes.fraction if routes.canary else 0.0)
            lines.append(f"gitmodel_serving{_labels(model=m, version=arm.version, stage=arm.stage)} {share:g}")
        return "\n".join(lines) + "\n"
