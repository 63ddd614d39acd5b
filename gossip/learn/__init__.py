"""How a node learns alone: the models, the flat parameter vector they live in, the optimiser and the trainer."""
