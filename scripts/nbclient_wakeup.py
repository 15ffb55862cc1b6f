"""Poll a kernel's channels in short slices, so a missed wake-up costs a second, not a cell timeout.

Issue 16: about one chapter execution in twelve stalled (nbclient 0.11, jupyter_client 8.10,
pyzmq 27.3, ipykernel 6.31): the kernel idle in its event loop, the client waiting on its shell
channel. The kernel had executed the cell (a second client saw the next execution count) and the
stalled execution then finished normally, without a timeout error, exactly when the client's one
long ``socket.poll(timeout)`` expired: the reply had been sitting in the client's socket, and only
the final level-triggered ``poll(0)`` of zmq.asyncio's poller saw it. The edge-triggered wake-up of
the asyncio poll was missed. ``jupyter_client``'s ``AsyncZMQSocketChannel.get_msg`` waits with one
poll of the whole cell timeout (300 s in the book, 600 s under nbval); this module replaces it by a
loop of polls of at most ``SLICE`` seconds with the same overall deadline, each ending in that
level-triggered check, and logs each message that only the end of a slice found.

    python scripts/nbclient_wakeup.py build . --keep-going -W   # jupyter-book with the fix (make book)
    import nbclient_wakeup; nbclient_wakeup.install()            # in a script or conftest
"""
from __future__ import annotations

import logging
import sys
import time
from queue import Empty

SLICE = 1.0          # seconds: the longest a missed wake-up can delay a message
log = logging.getLogger("nbclient_wakeup")
recovered = 0        # messages found only by the end-of-slice check (a missed wake-up)


def install() -> None:
    from jupyter_client.channels import AsyncZMQSocketChannel

    if getattr(AsyncZMQSocketChannel.get_msg, "_sliced", False):
        return

    async def get_msg(self, timeout: float | None = None):
        global recovered
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = SLICE if deadline is None else max(0.0, min(SLICE, deadline - time.monotonic()))
            t0 = time.monotonic()
            ready = await self.socket.poll(int(step * 1000))
            if ready:
                if step > 0 and time.monotonic() - t0 >= 0.98 * step:
                    recovered += 1
                    log.warning("a kernel message found only at the end of a %.1f s poll (a missed wake-up, or one that arrived just then)", step)
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty

    get_msg._sliced = True
    AsyncZMQSocketChannel.get_msg = get_msg


if __name__ == "__main__":
    install()
    from jupyter_book.cli.main import main

    sys.argv[0] = "jupyter-book"
    sys.exit(main())
