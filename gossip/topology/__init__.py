"""Who talks to whom: the communication graph, its mixing weights, and which neighbours a round uses."""
