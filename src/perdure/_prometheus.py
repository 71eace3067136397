"""``/metrics`` in Prometheus' text format, through OpenTelemetry's Prometheus exporter.

perdure's instruments (`perdure._metrics`) report to OpenTelemetry's global meter
provider when the application installed one. For ``/metrics``, perdure makes its own
provider, once per process, whose only reader is OpenTelemetry's
``PrometheusMetricReader`` on a registry of its own: scraping it neither needs nor
touches the application's OpenTelemetry set-up, and the application's own Prometheus
registry (if any) gets no duplicate series. The text is prometheus_client's
``generate_latest``, not written here.

Needs the ``metrics`` extra (OpenTelemetry's SDK, its Prometheus exporter and
prometheus_client); `exposition` raises a RuntimeError naming it otherwise.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from perdure._metrics import add_provider

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["CONTENT_TYPE", "exposition", "registry", "serve"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_lock = threading.Lock()
_made: list[CollectorRegistry] = []


def registry() -> CollectorRegistry:
    """The Prometheus registry of perdure's own meter provider, both made on the first call.

    Raises:
        RuntimeError: the ``metrics`` extra is not installed.
    """
    with _lock:
        if _made:
            return _made[0]
        try:
            from opentelemetry.exporter.prometheus import (  # noqa: PLC0415 (an extra)
                PrometheusMetricReader,
            )
            from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
            from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
            from prometheus_client import CollectorRegistry  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeError(
                "/metrics needs the metrics extra: pip install 'perdure[metrics]'"
            ) from exc
        own = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(registry=own)
        provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "perdure"})
        )
        add_provider(provider)
        _made.append(own)
        return own


def exposition() -> bytes:
    """The current readings in Prometheus' text format."""
    from prometheus_client import generate_latest  # noqa: PLC0415 (an extra)

    return generate_latest(registry())


def serve(host: str, port: int) -> Any:
    """Serve ``/metrics`` (any path, as prometheus_client does) on a thread; the server.

    For ``perdure worker --metrics-port``: a worker process has no HTTP app of its own.
    Call ``shutdown()`` on the result to stop it.
    """
    from prometheus_client import start_http_server  # noqa: PLC0415 (an extra)

    server, _thread = start_http_server(port, addr=host, registry=registry())
    return server
