"""Read coalescing: the plan is minimal, and the simulator receives exactly that many requests."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.plan import MAX_BITS, MAX_REGISTERS, Span, plan
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator

pytestmark = pytest.mark.timeout(30)


def holding(address: int, count: int = 2) -> Span:
    return Span("holding", address, count)


def test_contiguous_values_merge_into_one_request() -> None:
    requests = plan([holding(0), holding(2), holding(4)])
    assert [(r.span.address, r.span.count) for r in requests] == [(0, 6)]
    assert requests[0].describe(3) == "FC3 unit 3 holding registers 0-5 (6)"


def test_gap_up_to_max_gap_is_read_through_and_a_larger_one_is_not() -> None:
    assert len(plan([holding(0), holding(12)], max_gap=10)) == 1  # gap of 10
    assert len(plan([holding(0), holding(13)], max_gap=10)) == 2  # gap of 11
    assert len(plan([holding(0), holding(3)], max_gap=0)) == 2


def test_requests_stay_within_125_registers_and_2000_bits() -> None:
    registers = plan([holding(2 * i) for i in range(80)])  # 160 registers
    assert [r.span.count for r in registers] == [124, 36]
    bits = plan([Span("coil", i, 1) for i in range(0, 2500, 5)])
    assert all(r.span.count <= MAX_BITS for r in bits) and len(bits) == 2


def test_forbidden_range_is_never_read_across() -> None:
    requests = plan([holding(0), holding(10)], forbidden=[Span("holding", 4, 2)])
    assert [(r.span.address, r.span.count) for r in requests] == [(0, 2), (10, 2)]
    # a forbidden range in another table does not matter
    assert len(plan([holding(0), holding(10)], forbidden=[Span("input", 4, 2)])) == 1


def test_tables_are_never_mixed_and_overlaps_are_read_once() -> None:
    requests = plan([holding(0), Span("input", 2, 2), holding(1, 1), Span("coil", 0, 1)])
    assert [(r.span.function, r.span.address, r.span.count) for r in requests] == [
        ("coil", 0, 1),
        ("holding", 0, 2),
        ("input", 2, 2),
    ]


# The oracle shares no code with the planner: it tries every way of grouping the spans into
# requests (not only cuts of a sorted list) and keeps the valid groupings, judged by the Modbus
# limits written out again here.
_LIMIT = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}  # FC3/4: 125, FC1/2: 2000
_GAP_UNIT = {"holding": 1, "input": 1, "coil": 16, "discrete": 16}  # max_gap counts registers


def _one_request(group: list[Span], max_gap: int, forbidden: list[Span]) -> bool:
    """Whether one request can serve exactly these spans."""
    if len({s.function for s in group}) != 1:
        return False
    function = group[0].function
    low = min(s.address for s in group)
    high = max(s.address + s.count for s in group)
    if high - low > _LIMIT[function]:
        return False
    if any(
        f.function == function and f.address < high and low < f.address + f.count for f in forbidden
    ):
        return False
    covered = [False] * (high - low)
    for s in group:
        for a in range(s.address, s.address + s.count):
            covered[a - low] = True
    unread = 0
    for c in covered:  # every unread run inside the request is at most the allowed gap
        unread = 0 if c else unread + 1
        if unread > max_gap * _GAP_UNIT[function]:
            return False
    return True


def _fewest(spans: list[Span], max_gap: int, forbidden: list[Span]) -> int:
    """The fewest requests, by exhaustive search over every partition of each table's spans."""
    total = 0
    for function in {s.function for s in spans}:
        table = sorted({s for s in spans if s.function == function}, key=repr)
        n = len(table)
        valid = [
            _one_request([table[i] for i in range(n) if mask >> i & 1], max_gap, forbidden)
            for mask in range(1 << n)
        ]

        @cache
        def best(mask: int, valid=valid) -> int:
            if mask == 0:
                return 0
            low = mask & -mask  # the group holding the lowest remaining span
            rest = mask ^ low
            result, sub = mask.bit_count() + 1, rest  # more than one request per span
            while True:
                if valid[sub | low]:
                    result = min(result, 1 + best(rest ^ sub))
                if sub == 0:
                    break
                sub = (sub - 1) & rest
            return result

        total += best((1 << n) - 1)
    return total


spans = st.builds(
    Span,
    st.sampled_from(["holding", "input", "coil"]),
    st.integers(0, 400) | st.integers(0, 40),  # dense layouts hit the gap and size limits
    st.sampled_from([1, 2, 4, 50]),
)


@settings(max_examples=150, deadline=None)
@given(
    layout=st.lists(spans, min_size=1, max_size=12),
    max_gap=st.integers(0, 20),
    forbidden=st.lists(
        st.builds(Span, st.just("holding"), st.integers(0, 400), st.just(3)), max_size=2
    ),
)
def test_plan_issues_the_fewest_requests_and_covers_every_span(
    layout: list[Span], max_gap: int, forbidden: list[Span]
) -> None:
    # forbidden ranges only where no span lies (the configuration refuses the others)
    forbidden = [
        f
        for f in forbidden
        if not any(
            s.function == f.function and s.address < f.end and s.end > f.address for s in layout
        )
    ]
    requests = plan(layout, max_gap, forbidden)
    assert len(requests) == _fewest(layout, max_gap, forbidden)
    for request in requests:
        limit = MAX_BITS if request.span.is_bits else MAX_REGISTERS
        assert request.span.count <= limit
        assert not any(
            f.function == request.span.function
            and f.address < request.span.end
            and f.end > request.span.address
            for f in forbidden
        )
        for member in request.members:
            assert request.span.address <= member.address and member.end <= request.span.end
    assert {m for r in requests for m in r.members} == set(layout)


# Request counts measured at the simulator, one poll per layout.

LAYOUTS = {
    # name: (channels, device keys, minimal number of requests)
    "analyzer: 6 float32 + 6 status registers 100 apart": (
        [{"param": f"P{i}", "register": 2 * i, "status_register": 100 + i} for i in range(6)],
        {},
        2,
    ),
    "10 uint16 scattered with gaps of 5": (
        [{"param": f"P{i}", "register": 6 * i, "type": "uint16"} for i in range(10)],
        {},
        1,
    ),
    "same, max_gap = 4": (
        [{"param": f"P{i}", "register": 6 * i, "type": "uint16"} for i in range(10)],
        {"max_gap": 4},
        10,
    ),
    "70 float32 back to back (140 registers)": (
        [{"param": f"P{i}", "register": 2 * i} for i in range(70)],
        {},
        2,
    ),
    "holding, input, coils and discrete inputs, one forbidden hole": (
        [
            {"param": "A", "register": 0},
            {"param": "B", "register": 8},
            {"param": "C", "register": 20, "function": "input", "type": "int16"},
            {"param": "D", "register": 22, "function": "input", "type": "int16"},
            {"param": "E", "register": 0, "function": "coil"},
            {"param": "F", "register": 150, "function": "coil"},
            {"param": "G", "register": 7, "function": "discrete"},
        ],
        {"forbidden": [{"function": "holding", "first": 4, "last": 5}]},
        5,
    ),
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[ModbusTcpSimulator]:
    cells = dict.fromkeys(range(300), 0)
    device = ModbusDevice(
        holding=cells,
        input=cells,
        coils=dict.fromkeys(range(300), False),
        discrete=dict.fromkeys(range(300), False),
    )
    with ModbusTcpSimulator(devices={1: device}) as sim:
        yield sim


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_simulator_receives_the_minimal_number_of_requests(
    simulator: ModbusTcpSimulator, name: str
) -> None:
    channels, keys, minimal = LAYOUTS[name]
    config = ModbusTcpConfig.model_validate(
        {
            "name": "dev",
            "driver": "modbus_tcp",
            "host": "127.0.0.1",
            "port": simulator.port,
            "timeout_s": 0.5,
            "channels": channels,
            **keys,
        }
    )
    device = simulator.devices[1]
    device.allow()
    for rng in config.forbidden:  # the device refuses what the configuration forbids
        device.forbid(rng.first, rng.last - rng.first + 1)
    driver = ModbusTcpDriver(config)
    simulator.reset_counts()
    readings = driver.read(1)
    driver.close()

    assert {r.status for r in readings} == {"00"}, [r.error for r in readings if r.error]
    assert len(driver.plan()) == minimal
    assert simulator.requests[1] == minimal, simulator.log
