"""The cluster's config: the deploy example loads, and a cluster without PostgreSQL is refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.config import load_settings
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
