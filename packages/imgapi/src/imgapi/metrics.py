"""Prometheus metrics: HTTP requests per route, uploads, and images from imgcore's hook.

Each app has its own registry (several apps can live in one process, as in tests). With
``imgapi serve --workers N`` every worker process counts its own requests and images.
"""

from __future__ import annotations

from imgcore.plugin import ImageEnded, hookimpl
from imgcore.states import ImageStatus, RequestStatus
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ImageMetricsPlugin", "Metrics"]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_IMAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class Metrics:
    """The app's metrics, registered in their own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "imgapi_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "imgapi_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response body is sent)",
            ["method", "route"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.http_in_flight = Gauge(
            "imgapi_http_requests_in_flight", "HTTP requests being handled", registry=r
        )
        self.http_bytes = Counter(
            "imgapi_http_bytes",
            "HTTP body bytes received (in) and sent (out)",
            ["direction"],
            registry=r,
        )
        self.uploads = Counter(
            "imgapi_uploads",
            "CSV uploads by outcome (accepted, or the problem reason)",
            ["outcome"],
            registry=r,
        )
        self.requests = Gauge(
            "imgcore_requests",
            "Stored requests by status (counted in the database at each scrape)",
            ["status"],
            registry=r,
        )
        self.images = Counter(
            "imgcore_images",
            "Images that ended in this process, by status (done, failed)",
            ["status"],
            registry=r,
        )
        self.image_failures = Counter(
            "imgcore_image_failures",
            "Failed images by reason code",
            ["reason"],
            registry=r,
        )
        self.image_bytes = Counter(
            "imgcore_image_bytes",
            "Image bytes downloaded (in) and stored after compression (out)",
            ["direction"],
            registry=r,
        )
        self.images_reused = Counter(
            "imgcore_images_reused",
            "Done images that reused an earlier import's outputs, by why (not_modified, "
            "same_content, max_age)",
            ["reason"],
            registry=r,
        )
        self.download_bytes_saved = Counter(
            "imgcore_download_bytes_saved",
            "Source bytes not downloaded because an earlier import's outputs were reused",
            registry=r,
        )
        self.image_seconds = Histogram(
            "imgcore_image_processing_seconds",
            "Time to download, compress and store one image",
            ["status"],
            buckets=_IMAGE_BUCKETS,
            registry=r,
        )
        for status in RequestStatus:
            self.requests.labels(status.value)
        for outcome in ("done", "failed"):
            self.images.labels(outcome)
        for reason in ("not_modified", "same_content", "max_age"):
            self.images_reused.labels(reason)
        for direction in ("in", "out"):
            self.image_bytes.labels(direction)
            self.http_bytes.labels(direction)

    def image_ended(self, event: ImageEnded) -> None:
        """Count one finished image."""
        status = event.status.value
        self.images.labels(status).inc()
        self.image_seconds.labels(status).observe(event.seconds)
        if event.status is ImageStatus.FAILED:
            self.image_failures.labels(event.error_reason or "unknown").inc()
        downloaded = (event.input_bytes or 0) - event.saved_bytes
        if downloaded > 0:
            self.image_bytes.labels("in").inc(downloaded)
        if event.reused is not None:
            # Nothing was stored: the outputs are an earlier import's.
            self.images_reused.labels(event.reused).inc()
            self.download_bytes_saved.inc(event.saved_bytes)
        elif event.output_bytes:
            self.image_bytes.labels("out").inc(event.output_bytes)


class ImageMetricsPlugin:
    """An imgcore plugin feeding :class:`Metrics` from the ``imgcore_image_ended`` hook."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @hookimpl
    def imgcore_image_ended(self, event: ImageEnded) -> None:
        """Count the image."""
        self.metrics.image_ended(event)
