"""A cluster node's figures for Prometheus: who leads what, leader changes, fencing and the fan-out stream."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from crmtel.cluster.service import ClusterNode


class ClusterCollector:
    """Read at scrape time from the node's parts; every family is labelled with the node's name."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def collect(self) -> Iterable[Metric]:
        """One family per figure."""
        node = self._node
        labels = ["node"]
        leading = GaugeMetricFamily(
            "crmtel_cluster_leading", "1 while this node follows the PBX.", labels=["node", "pbx"]
        )
        changes = CounterMetricFamily(
            "crmtel_cluster_leader_changes",
            "Times this node became the PBX's leader.",
            labels=["node", "pbx"],
        )
        for lead in node.leaderships:
            leading.add_metric([node.name, lead.pbx], 1.0 if lead.leading else 0.0)
            changes.add_metric([node.name, lead.pbx], lead.changes)
        yield leading
        yield changes
        fenced = CounterMetricFamily(
            "crmtel_cluster_writes_fenced",
            "Flushes refused because another node took the PBX over.",
            labels=labels,
        )
        fenced.add_metric([node.name], node.fence.rejected)
        yield fenced
        published = node.publisher
        sent = CounterMetricFamily(
            "crmtel_cluster_fanout_sent", "Live events this node appended to the stream.", labels=labels
        )
        sent.add_metric([node.name], published.sent)
        yield sent
        waiting = GaugeMetricFamily(
            "crmtel_cluster_fanout_pending", "Live events waiting for Redis.", labels=labels
        )
        waiting.add_metric([node.name], published.pending)
        yield waiting
        dropped = CounterMetricFamily(
            "crmtel_cluster_fanout_dropped",
            "Live events dropped while Redis was away too long.",
            labels=labels,
        )
        dropped.add_metric([node.name], published.dropped)
        yield dropped
        consumer = node.consumer
        if consumer is not None:
            received = CounterMetricFamily(
                "crmtel_cluster_fanout_received", "Live events read from the stream.", labels=labels
            )
            received.add_metric([node.name], consumer.received)
            yield received
            lag = GaugeMetricFamily(
                "crmtel_cluster_fanout_lag_seconds",
                "Age of the last live event read (leader's clock).",
                labels=labels,
            )
            lag.add_metric([node.name], consumer.lag_seconds)
            yield lag
            up = GaugeMetricFamily(
                "crmtel_cluster_fanout_connected", "1 while the stream's Redis answers.", labels=labels
            )
            up.add_metric([node.name], 1.0 if consumer.connected else 0.0)
            yield up
