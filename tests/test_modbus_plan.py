"""Read coalescing: the plan is minimal, and the simulator receives exactly that many requests."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.plan import MAX_BITS, MAX_REGISTERS, Span, _fits, plan
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


def _fewest(spans: list[Span], max_gap: int, forbidden: list[Span]) -> int:
    """The fewest requests by exhaustive search over where to cut the sorted spans."""
    ordered = sorted(set(spans), key=lambda s: (s.function, s.address, s.count))

    def feasible(i: int, j: int) -> bool:  # spans i..j-1 in one request
        block = ordered[i]
        for span in ordered[i + 1 : j]:
            if not _fits(block, span, max_gap, forbidden):
                return False
            end = max(block.end, span.end)
            block = Span(block.function, block.address, end - block.address)
        return True

    @cache
    def best(i: int) -> int:
        if i == len(ordered):
            return 0
        return min(1 + best(j) for j in range(i + 1, len(ordered) + 1) if feasible(i, j))

    return best(0)


spans = st.builds(
    Span,
    st.sampled_from(["holding", "input", "coil"]),
    st.integers(0, 400),
    st.sampled_from([1, 2, 4]),
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
