"""How a model travels: the wire format, its codecs, the transports, connection limits and link emulation."""
