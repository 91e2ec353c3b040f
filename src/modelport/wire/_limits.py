"""The ranges a gateway client's numbers and names must fall in, checked as the body is read.

A request that asks for ``max_tokens`` with 400 digits, a temperature of
1e300 or a model name of five megabytes is a mistake or an attack; either way
it stops at the edge with a 400 that names the field, instead of travelling to
an upstream, into the logs and into ``/health``. The checks are msgspec
constraints on the request shapes, so they cost nothing beyond the
conversion that reads the body anyway.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "MAX_MODEL_NAME",
    "MAX_TOKEN_COUNT",
    "ModelName",
    "Probability",
    "Temperature",
    "TokenBudget",
    "TokenCount",
    "UnitTemperature",
]

#: The longest model address a client may send. Real ones
#: (``openrouter/meta-llama/llama-3.1-405b-instruct:free``) stay far below.
MAX_MODEL_NAME = 256

#: The largest token count any field takes: what a signed 32-bit integer holds,
#: far beyond every model's window and within what every upstream parses.
MAX_TOKEN_COUNT = 2**31 - 1

ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MODEL_NAME)]

# Counts are ``int | float``: a JSON Schema ``integer`` written ``1024.0`` is 1024
# (``_json.whole_number`` refuses a fraction).
TokenCount = (
    Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKEN_COUNT)]
    | Annotated[float, msgspec.Meta(ge=1, le=MAX_TOKEN_COUNT)]
)
#: A reasoning budget, where 0 may mean "none".
TokenBudget = (
    Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKEN_COUNT)]
    | Annotated[float, msgspec.Meta(ge=0, le=MAX_TOKEN_COUNT)]
)

#: OpenAI's sampling temperature, 0 to 2.
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
#: Anthropic's, 0 to 1.
UnitTemperature = Annotated[float, msgspec.Meta(ge=0, le=1)]
#: ``top_p``: a probability.
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
