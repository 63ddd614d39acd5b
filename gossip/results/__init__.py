"""What does a run leave behind? The run directory's files, its typed summaries, and the report made from them."""

__all__: list[str] = []
