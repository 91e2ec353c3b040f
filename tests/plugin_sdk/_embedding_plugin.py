"""A plugin written with the SDK that embeds, used by the SDK's embedding tests.

``vec-1`` answers with bare vectors (each text's length and word count);
``full-1`` with a whole embeddings list carrying usage; the text ``boom``
raises a RateLimitError. Chats are not its business.
"""

from __future__ import annotations

from modelport.errors import RateLimitError
from modelport.plugin_sdk import Request, llm_provider, plugin


@plugin.on_start
async def start():
    await llm_provider.register(
        "vectors",
        name="Vectors",
        models=[{"id": "vec-1"}, {"id": "full-1"}],
        config_fields=[{"key": "scale", "label": "Scale", "type": "text"}],
    )


@llm_provider.on_stream_request
async def stream(request: Request):
    yield "I only embed."


@llm_provider.on_embed_request
async def embed(request: Request):
    texts = request.inputs
    if "boom" in texts:
        raise RateLimitError("too many vectors", status=429, retry_after=2)
    scale = float(request.config.get("scale", 1))
    vectors = [[len(text) * scale, float(len(text.split()))] for text in texts]
    if request.model == "full-1":
        words = sum(len(text.split()) for text in texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": request.model,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
    return vectors


if __name__ == "__main__":
    plugin.run()
