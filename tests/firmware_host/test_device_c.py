"""The whole-device build refuses a bundle whose C speaks another wire version (flashing it would send packets
the server does not expect), with a message that says what to do."""

from __future__ import annotations

import pytest

from acom.errors import AcomError
from acom.export import c_constants
from acom.firmware_host.device_c import check_wire_version


def test_a_bundle_exported_for_another_wire_version_is_refused(tmp_path) -> None:
    (tmp_path / "c").mkdir()
    with pytest.raises(AcomError, match="no acom_wire_constants.h"):
        check_wire_version(tmp_path)
    header = tmp_path / "c" / "acom_wire_constants.h"
    header.write_text("#define ACOM_WIRE_VERSION 2\n")
    with pytest.raises(AcomError, match="wire format v2; this acom sends v3: export the bundle again"):
        check_wire_version(tmp_path)
    c_constants.write(tmp_path / "c")  # what an export writes today
    check_wire_version(tmp_path)
