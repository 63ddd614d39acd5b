"""Many processes: the launcher, the fork server, the single-process simulator, and the deployment renderers."""
