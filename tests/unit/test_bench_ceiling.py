"""The bench's CPU ceiling (bench/scenarios.py: cpu_ceiling): each daemon is one process, so
one core at most (or its cap), and the daemons share the machine's cores with what serves
them. On 2 shared cores, two daemons can reach 1.6× one only where the rest costs at most a
quarter of a daemon's CPU per post (README, issue 12's target)."""

from __future__ import annotations

import pytest

from bench.scenarios import cpu_ceiling


def test_one_daemon_is_held_by_its_own_core_and_many_by_the_shared_ones() -> None:
    assert cpu_ceiling(5.0, 1.0, 1, 2) == 200.0  # its own core: 1000 / 5
    assert cpu_ceiling(5.0, 1.0, 2, 2) == pytest.approx(333.3)  # 2 cores over 6 ms a post
    assert cpu_ceiling(5.0, 1.0, 1, 2, core_per_daemon=0.3) == 60.0  # held to 0.3 of a core
    assert cpu_ceiling(0.0, 1.0, 1, 2) is None


@pytest.mark.parametrize(("others_ms", "reaches"), [(1.0, True), (1.25, True), (1.3, False), (4.13, False)])
def test_two_daemons_reach_1_6x_one_on_two_shared_cores_only_when_the_rest_costs_a_quarter(
        others_ms: float, reaches: bool) -> None:
    one, two = cpu_ceiling(5.0, others_ms, 1, 2), cpu_ceiling(5.0, others_ms, 2, 2)
    assert one is not None and two is not None
    assert (two / one >= 1.6 - 1e-9) is reaches, (one, two)
