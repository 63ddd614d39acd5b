"""How does a run get going on this machine? The launcher (prepare, start, supervise, summarise), the fork server, the
single-process simulator, and the deployment renderers."""

__all__: list[str] = []
