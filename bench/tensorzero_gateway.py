"""``python -m bench.tensorzero_gateway --upstream-port P --port-file F``: the reference gateway.

TensorZero's Python package (PyPI ``tensorzero``, pinned in the ``bench``
extra, never a dependency of modelport) embeds its Rust gateway: this process
starts it on a port of its own choosing in front of the fake upstream, with
one TensorZero model per request shape (``chunks-8``, ``chunks-20``,
``chunks-200``, each the upstream's model of that name), no ClickHouse,
PostgreSQL or Valkey (so, unlike modelport's ledger, it records nothing),
writes its port to the port file (its own log lines go to stdout) and
serves until it is terminated. Clients call its
OpenAI-compatible route ``/openai/v1/chat/completions`` with the model
``tensorzero::model_name::chunks-N``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

#: The route and model prefix of TensorZero's OpenAI-compatible API.
PATH = "/openai/v1/chat/completions"
MODEL_PREFIX = "tensorzero::model_name::"


def config_text(upstream_port: int, chunks: tuple[int, ...] = (8, 20, 200)) -> str:
    """A TensorZero config with one model per chunk count, all on the fake upstream."""
    blocks = []
    for count in chunks:
        name = f"chunks-{count}"
        blocks.append(
            f'[models."{name}"]\n'
            'routing = ["upstream"]\n\n'
            f'[models."{name}".providers.upstream]\n'
            'type = "openai"\n'
            f'model_name = "{name}"\n'
            f'api_base = "http://127.0.0.1:{upstream_port}/v1/"\n'
            'api_key_location = "none"\n'
        )
    return "\n".join(blocks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tensorzero_gateway")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import tensorzero
    except ImportError:
        sys.exit("TensorZero is not installed: pip install -e '.[bench]' (the bench extra).")
    folder = Path(tempfile.mkdtemp(prefix="tensorzero-"))
    config = folder / "tensorzero.toml"
    config.write_text(config_text(args.upstream_port))
    gateway = tensorzero._start_http_gateway(
        config_file=str(config),
        clickhouse_url=None,
        postgres_url=None,
        valkey_url=None,
        async_setup=False,
    )
    written = args.port_file.with_suffix(".tmp")
    written.write_text(str(urlsplit(gateway.base_url).port))
    written.replace(args.port_file)  # whole, never half-written
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.pause()


if __name__ == "__main__":
    main()
