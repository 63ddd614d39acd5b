"""One node process: the round loop that drives topology, learning, the network and the algorithms, and its daemon."""
