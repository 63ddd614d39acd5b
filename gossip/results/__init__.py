"""What a run leaves behind: the run directory's files and the report made from them."""
