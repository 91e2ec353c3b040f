"""``python -m modelport`` runs the CLI."""

from modelport.cli import main

main()
