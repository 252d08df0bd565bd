"""How FreePBX-ness is configured per PBX: ``flavour`` and ``device_prefixes``."""

from __future__ import annotations

import pytest

from crmtel.config import AmiSettings, Settings, load_settings
from crmtel.errors import ConfigError


def test_plain_asterisk_maps_no_devices() -> None:
    """Without a flavour no device prefix applies: PJSIP/99101 stays 99101."""
    assert AmiSettings().devices_of_users == ()


def test_freepbx_flavour_defaults_to_the_webrtc_prefix() -> None:
    """``flavour = "freepbx"`` means FreePBX's WebRTC devices 99<ext> ring for <ext>."""
    assert AmiSettings(flavour="freepbx").devices_of_users == ("99",)


def test_an_explicit_list_wins_even_an_empty_one() -> None:
    """``device_prefixes`` overrides the flavour's default, ``[]`` switches the mapping off."""
    assert AmiSettings(flavour="freepbx", device_prefixes=("98", "99")).devices_of_users == ("98", "99")
    assert AmiSettings(flavour="freepbx", device_prefixes=()).devices_of_users == ()


def test_each_pbx_has_its_own_flavour() -> None:
    """``[[pbx]]`` tables carry their own flavour: one FreePBX and one plain Asterisk side by side."""
    settings = Settings(ami={"name": "main", "flavour": "freepbx"}, pbx=({"name": "branch"},))
    assert [p.devices_of_users for p in settings.pbxes] == [("99",), ()]


@pytest.mark.parametrize("bad", ["x9", "", "12345", "9 9"])
def test_a_prefix_that_is_not_digits_stops_crmtel(bad: str) -> None:
    """A prefix must be 1–4 digits; anything else is a configuration error naming the section and the value."""
    with pytest.raises(ConfigError, match="ami") as caught:
        load_settings(ami={"device_prefixes": [bad]})
    assert f'"{bad}"' in str(caught.value)
