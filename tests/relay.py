"""A delaying TCP relay: the user-space stand-in for netem's delay (this kernel has no sch_netem).

``python -m tests.relay --delay-ms 100 --jitter-ms 10 LISTEN=UPSTREAM [LISTEN=UPSTREAM ...]`` listens on each
``host:port`` and forwards every accepted connection to its upstream. Bytes from the client to the upstream
are held ``delay ± U(jitter)`` ms (never reordered: a TCP stream stays a stream, so a chunk leaves no earlier
than the one before it); bytes back travel undelayed. Put in front of a node's ROUTER, it delays exactly what
its neighbours send it — the same one-way delay as ``[links] delay_ms`` applied by the sender.
Prints ``relay ready`` once every listener is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float, jitter_s: float, rng: random.Random) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    last = 0.0

    async def release() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(release())
    try:
        while True:
            chunk = await reader.read(65536)
            due = max(last, loop.time() + max(0.0, delay_s + rng.uniform(-jitter_s, jitter_s)))
            last = due
            await queue.put((due, chunk))
            if not chunk:
                break
    except (ConnectionError, OSError):
        await queue.put((0.0, b""))
    await sender


async def _serve(listen: str, upstream: str, delay_s: float, jitter_s: float, seed: int) -> asyncio.Server:
    up_host, up_port = upstream.rsplit(":", 1)
    rng = random.Random(seed)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pump(client_r, up_w, delay_s, jitter_s, rng), _pump(up_r, client_w, 0.0, 0.0, rng), return_exceptions=True)

    host, port = listen.rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port))


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("pairs", nargs="+", metavar="LISTEN=UPSTREAM")
    args = p.parse_args(argv)
    servers = []
    for k, pair in enumerate(args.pairs):
        listen, upstream = pair.split("=", 1)
        servers.append(await _serve(listen, upstream, args.delay_ms / 1000, args.jitter_ms / 1000, args.seed + k))
    print("relay ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
