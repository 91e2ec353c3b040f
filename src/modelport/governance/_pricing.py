"""The worst case a request can cost, in whole nano-dollars and tokens, before it is sent.

A budget can only be kept if the hold placed before a call is at least what
the call turns out to cost. Output is bounded by ``max_tokens`` (which the
reservation clamps to what is left). Input is bounded without a tokenizer:

* a token covers at least one byte of UTF-8 text in every tokenizer in use
  (byte-level BPE, SentencePiece with byte fallback), so the byte length of
  the request as JSON bounds its text, tool definitions and options; the
  JSON punctuation around each message (``{"role":"user","content":""}``,
  28 bytes) covers the few tokens a chat template adds per turn;
* an image counts :data:`IMAGE_TOKENS` (no provider bills one above ~2,500
  today) instead of the bytes of its base64 data;
* tools add :data:`TOOLS_TOKENS` for the system prompt a provider writes
  around them (Anthropic's is 346 tokens).

Money is counted in integer nano-dollars (10⁻⁹ USD): counters add exactly,
in Python, in Lua and in SQL alike. Every input token is priced at the
highest of the model's input, cache-read and cache-write prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from modelport.ledger import compute_cost
from modelport.types import ChatRequest, EmbeddingRequest, ImagePart, ModelPrices, Usage

__all__ = [
    "IMAGE_TOKENS",
    "TOOLS_TOKENS",
    "Charge",
    "actual_nanos",
    "chat_input_bound",
    "embedding_input_bound",
    "limit_nanos",
    "nanos",
    "price_per_token",
]

IMAGE_TOKENS = 4_096
TOOLS_TOKENS = 1_024
#: Room for what a provider adds around a whole conversation.
_BASE_TOKENS = 16

_encode = msgspec.json.encode


def chat_input_bound(request: ChatRequest) -> int:
    """An upper bound on the input tokens ``request`` can be billed for."""
    total = len(_encode(request)) + _BASE_TOKENS
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            continue
        for part in content:
            if isinstance(part, ImagePart):
                total += IMAGE_TOKENS - len(part.data or "")
    if request.tools:
        total += TOOLS_TOKENS
    return max(total, _BASE_TOKENS)


def embedding_input_bound(request: EmbeddingRequest) -> int:
    total = _BASE_TOKENS
    for item in request.input:
        total += len(item.encode()) if isinstance(item, str) else len(item)
    return total


def price_per_token(prices: ModelPrices | None) -> tuple[float, float] | None:
    """(input, output) nano-dollars per token: the highest input-side price and the output
    price; ``None`` when the model's prices are unknown."""
    if prices is None or prices.input is None or prices.output is None:
        return None
    inputs = [p for p in (prices.input, prices.cache_read, prices.cache_write) if p is not None]
    # Per million tokens in dollars = per token in micro-dollars = ×1,000 nano-dollars.
    return max(inputs) * 1_000, prices.output * 1_000


def nanos(value: float) -> int:
    """Dollars → nano-dollars, rounded up (a hold never falls short by a rounding)."""
    return math.ceil(value * 1e9 - 1e-6)


def limit_nanos(value: float) -> int:
    """A budget's dollars → nano-dollars, rounded down (spend never passes it by a rounding)."""
    return math.floor(value * 1e9 + 1e-6)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request asks of the counters, before the call.

    ``input_cost`` and ``input_tokens`` are the input's worst case;
    ``output_price`` the nano-dollars each output token costs; ``max_output``
    the most output tokens the request may get (its own ``max_tokens``, or the
    default cap), which the reservation may lower; ``min_output`` the fewest
    worth sending (1 for a chat, 0 for embeddings).
    """

    input_cost: int
    input_tokens: int
    output_price: float
    max_output: int
    min_output: int = 1

    def cost_of(self, output: int) -> int:
        return self.input_cost + math.ceil(output * self.output_price - 1e-6)


def actual_nanos(usage: Usage, prices: ModelPrices | None) -> int:
    """What a finished call costs in nano-dollars (0 when its prices are unknown)."""
    cost = compute_cost(usage, prices)
    return 0 if cost is None else nanos(cost)
