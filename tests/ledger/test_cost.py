from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport.ledger import compute_cost
from modelport.types import ModelPrices, Usage

PRICES = ModelPrices(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)


def test_input_and_output_at_their_prices() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=200_000)
    assert compute_cost(usage, PRICES) == pytest.approx(3.0 + 3.0)


def test_cache_reads_and_writes_are_carved_out_of_input() -> None:
    # input_tokens includes the cached ones: 1M in = 600k fresh + 300k read + 100k written.
    usage = Usage(
        input_tokens=1_000_000,
        cache_read_tokens=300_000,
        cache_write_tokens=100_000,
        output_tokens=0,
    )
    expected = 0.6 * 3.0 + 0.3 * 0.3 + 0.1 * 3.75
    assert compute_cost(usage, PRICES) == pytest.approx(expected)


def test_cache_prices_fall_back_to_the_input_price() -> None:
    prices = ModelPrices(input=2.0, output=8.0)
    usage = Usage(input_tokens=1000, cache_read_tokens=400, cache_write_tokens=100)
    assert compute_cost(usage, prices) == pytest.approx(1000 * 2.0 / 1e6)


def test_reasoning_is_part_of_output_not_added_again() -> None:
    usage = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=800)
    assert compute_cost(usage, PRICES) == pytest.approx(1000 * 15.0 / 1e6)


def test_upstream_cost_wins_over_prices() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000, cost=0.0421)
    assert compute_cost(usage, PRICES) == 0.0421
    assert compute_cost(usage, None) == 0.0421


@pytest.mark.parametrize("prices", [None, ModelPrices()])
def test_unknown_prices_give_no_cost(prices: ModelPrices | None) -> None:
    assert compute_cost(Usage(input_tokens=10, output_tokens=5), prices) is None


def test_a_needed_price_that_is_unknown_gives_no_cost() -> None:
    prices = ModelPrices(input=1.0)
    assert compute_cost(Usage(input_tokens=10, output_tokens=5), prices) is None
    # ...but a price the call does not need may be missing.
    assert compute_cost(Usage(input_tokens=1_000_000), prices) == pytest.approx(1.0)


def test_inconsistent_counts_never_give_a_negative_cost() -> None:
    usage = Usage(input_tokens=10, cache_read_tokens=50)
    assert compute_cost(usage, PRICES) == pytest.approx(50 * 0.3 / 1e6)


def test_no_tokens_cost_nothing_when_prices_are_known() -> None:
    assert compute_cost(Usage(), PRICES) == 0.0


def _reference_cost(usage: Usage, prices: ModelPrices | None) -> float | None:
    """The rule as it was first written (a loop over the parts), to hold the fast one to."""
    if usage.cost is not None:
        return usage.cost
    if prices is None or (prices.input is None and prices.output is None):
        return None
    uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    parts = (
        (uncached, prices.input),
        (usage.cache_read_tokens, prices.input if prices.cache_read is None else prices.cache_read),
        (
            usage.cache_write_tokens,
            prices.input if prices.cache_write is None else prices.cache_write,
        ),
        (usage.output_tokens, prices.output),
    )
    total = 0.0
    for tokens, price in parts:
        if tokens:
            if price is None:
                return None
            total += tokens * price
    return total / 1_000_000


_tokens = st.integers(min_value=0, max_value=5_000_000)
_price = st.none() | st.floats(min_value=0, max_value=100, allow_nan=False)


@given(
    st.builds(
        Usage,
        input_tokens=_tokens,
        output_tokens=_tokens,
        cache_read_tokens=_tokens,
        cache_write_tokens=_tokens,
        cost=st.none() | st.floats(min_value=0, max_value=10, allow_nan=False),
    ),
    st.none()
    | st.builds(ModelPrices, input=_price, output=_price, cache_read=_price, cache_write=_price),
)
def test_the_cost_is_exactly_the_rules(usage: Usage, prices: ModelPrices | None) -> None:
    assert compute_cost(usage, prices) == _reference_cost(usage, prices)
