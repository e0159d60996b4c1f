"""Provenance: a device read from files is named so in the station descriptor (``source =
"file"``, with the datalogger's make and model), and a descriptor sealed before ``source``
existed still reads (as ``"device"``)."""

from __future__ import annotations

from agent.config.model import parse_config
from agent.records.descriptor import descriptor_body
from core.records import check_body


def test_the_descriptor_says_which_devices_are_read_from_files(tmp_path):
    data = {
        "station": {"id": "S-1"},
        "signing": {"key": "station.key"},
        "buffer": {"path": "buffer.db"},
        "devices": [
            {
                "name": "met-logger",
                "driver": "files",
                "format": "toa5",
                "folder": "in",
                "make": "Campbell Scientific",
                "model": "CR1000X",
                "channels": [{"code": "RH", "param": "RH", "unit": "%"}],
            },
            {
                "name": "bus1",
                "driver": "sdi12",
                "port": "/dev/ttyUSB0",
                "sensors": [
                    {"address": "0", "channels": [{"value": 1, "param": "Level", "unit": "m"}]}
                ],
            },
        ],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    body = descriptor_body(parse_config(data, tmp_path / "agent.toml"))
    devices = {d["name"]: d for d in body["devices"]}
    assert devices["met-logger"]["source"] == "file"
    assert (devices["met-logger"]["make"], devices["met-logger"]["model"]) == (
        "Campbell Scientific",
        "CR1000X",
    )
    assert devices["bus1"]["source"] == "device"
    assert {c["device"] for c in body["channels"]} == {"met-logger", "bus1"}


def test_a_descriptor_from_before_source_still_reads():
    old = {
        "station": {"id": "S-1", "name": "", "type": None, "operator": "", "location": None},
        "devices": [
            {"name": "d", "driver": "modbus_tcp", "make": "", "model": "",
             "serial_number": "", "principle": "", "range": ""}
        ],
        "channels": [],
        "catalogue": "2026.11.1",
    }  # fmt: skip
    assert check_body("descriptor", old)["devices"][0]["source"] == "device"
