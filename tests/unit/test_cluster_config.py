"""The cluster's config: the deploy example loads, and a cluster without PostgreSQL is refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.cluster.service import connections_problem, node_connections
from crmtel.config import ClusterSettings, load_settings
from crmtel.errors import ConfigError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cluster"


def test_the_deploy_example_of_a_cluster_node_loads() -> None:
    """deploy/cluster/crmtel-node.toml has only real keys and valid values."""
    settings = load_settings(DEPLOY / "crmtel-node.toml")
    assert settings.cluster.enabled
    assert settings.cluster.node() == "crmtel-1"
    assert settings.database_url.startswith("postgresql")


def test_a_cluster_on_sqlite_is_refused(tmp_path: Path) -> None:
    """Nodes must share one database: enabled with the SQLite default is a config error naming the key."""
    config = tmp_path / "c.toml"
    config.write_text("[cluster]\nenabled = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cluster"):
        load_settings(config)


def test_the_load_balancer_examples_upgrade_websockets_and_check_health() -> None:
    """nginx passes the websocket upgrade on /ws; HAProxy checks each node's /healthz."""
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "location /ws" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    haproxy = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    assert "option httpchk GET /healthz" in haproxy
    dialplan = (DEPLOY / "extensions_crmtel_two_nodes.conf").read_text(encoding="utf-8")
    assert dialplan.count("AGI(agi://${CRMTEL_AGI_") == 2


def test_three_nodes_at_the_default_pools_fit_postgresql_default_connections_and_bigger_pools_are_flagged() -> (
    None
):
    """8 + 4 pooled + 4 control + 1 PBX lock = 17 a node, 51 for three: under 100 - 3 reserved. The old
    10 + 20 pool (35 a node, 105 for three) is the burst that got HTTP 503, and is named as a problem."""
    defaults = ClusterSettings(enabled=True)
    assert node_connections(defaults, 1) == 17
    assert connections_problem(defaults, 1, server_max=100, reserved=3) is None
    old = ClusterSettings(enabled=True, pool_size=10, pool_overflow=20)
    problem = connections_problem(old, 1, server_max=100, reserved=3)
    assert problem is not None
    assert "3 nodes of 35" in problem
    assert "97" in problem
    assert connections_problem(old, 1, server_max=200, reserved=3) is None
