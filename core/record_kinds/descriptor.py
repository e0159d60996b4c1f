"""The station descriptor record (kind ``descriptor``): what the station's readings mean.

Sealed by the agent at first start and whenever its content changes (``agent.records.descriptor``);
every v3 readings batch names the descriptor in force by its ``seq`` (docs/protocol.md)::

    {"station": {"id", "name", "type", "operator", "location": {...} | null},
     "devices": [{"name", "driver", "make", "model", "serial_number", "principle", "range",
                  "source", "sensors": [{"address", "sdi12_version", "vendor", "model",
                                         "version", "serial"}] | null}],
     "channels": [{"device", "param", "unit", "limits": {"min", "max", "standard"} | null}],
     "catalogue": "<parameter catalogue version>"}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr, model_validator

from core.model import Model
from core.records import register_kind

_Text = Annotated[StrictStr, Field(max_length=256)]
_Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]
_Number = StrictInt | StrictFloat


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", strict=True)


class Vn2000(_Strict):
    """VN-2000 grid coordinates: northing ``x``, easting ``y`` (m), central meridian, zone."""

    x: _Number
    y: _Number
    meridian: _Number
    zone: Literal[3, 6]


class Location(_Strict):
    """WGS 84 latitude and longitude in degrees, and optionally VN-2000."""

    lat: Annotated[_Number, Field(ge=-90, le=90)]
    lon: Annotated[_Number, Field(ge=-180, le=180)]
    vn2000: Vn2000 | None


class Station(_Strict):
    id: _Name
    name: _Text
    type: Literal["air", "surface_water", "groundwater", "wastewater", "stack"] | None
    operator: _Text
    location: Location | None


_Stated = Annotated[StrictStr, Field(pattern=r"^[ -~]*$")]  # printable ASCII, as on the bus


class Sensor(_Strict):
    """A sensor of a device's bus as it identifies itself (SDI-12 ``aI!``): every text ``null``
    when it gave no identification, all of them texts when it did (``serial`` ``""`` when the
    sensor states none)."""

    address: Annotated[StrictStr, Field(pattern=r"^[0-9A-Za-z]$")]
    sdi12_version: Annotated[_Stated, Field(max_length=2)] | None
    vendor: Annotated[_Stated, Field(max_length=8)] | None
    model: Annotated[_Stated, Field(max_length=6)] | None
    version: Annotated[_Stated, Field(max_length=3)] | None
    serial: Annotated[_Stated, Field(max_length=13)] | None

    @model_validator(mode="after")
    def _all_or_none(self) -> Sensor:
        texts = (self.sdi12_version, self.vendor, self.model, self.version, self.serial)
        if any(t is None for t in texts) and any(t is not None for t in texts):
            raise ValueError("an identification is either complete or null throughout")
        return self


class Device(_Strict):
    name: _Name
    driver: _Name
    make: _Text
    model: _Text
    serial_number: _Text
    principle: _Text
    range: _Text
    source: Literal["device", "file"] = "device"
    """Where its readings come from: ``device``, the agent talks to the instrument or its
    datalogger; ``file``, files the datalogger wrote (the ``files`` driver). Absent in
    descriptors sealed before it existed (read as ``device``)."""
    sensors: Annotated[list[Sensor], Field(max_length=62)] | None = None
    """The sensors of a bus as they identify themselves, read from them when the agent starts
    and when it reconnects (the ``sdi12`` driver); ``null`` for a device that states none.
    Absent in descriptors sealed before it existed (read as ``null``)."""


class Limits(_Strict):
    """The limit values a channel is judged against, in the channel's unit."""

    min: _Number | None
    max: _Number | None
    standard: _Text


class DescriptorChannel(_Strict):
    device: _Name
    param: _Name
    unit: _Text
    limits: Limits | None


class Descriptor(_Strict):
    """The body of a ``descriptor`` record."""

    station: Station
    devices: Annotated[list[Device], Field(max_length=1000)]
    channels: Annotated[list[DescriptorChannel], Field(max_length=10_000)]
    catalogue: _Name


register_kind("descriptor", Descriptor)
