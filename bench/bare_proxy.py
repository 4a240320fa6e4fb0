"""The least a Python gateway can do: a bare HTTP/1.1 keep-alive reverse proxy on uvloop + httptools, with no
auth, no routing, no JSON parsing, no metrics and no logs. Each client connection gets its own upstream
connection and requests are relayed byte for byte.

It is not part of Hearth. bench/gateway.py runs it next to Hearth so that the throughput ratio has a
reference: whatever this proxy reaches on a machine is the most that any gateway written in Python could
reach there.

    python -m bench.bare_proxy LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class _Message:
    """Collects one HTTP message (head and body) from a parser's callbacks."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


async def _read_message(reader: asyncio.StreamReader, parser_type: type, sink: bytearray) -> bool:
    """Append one whole message from `reader` to `sink`; False when the peer closed first."""
    message = _Message()
    parser = parser_type(message)
    while not message.complete:
        data = await reader.read(65536)
        if not data:
            return False
        sink += data
        parser.feed_data(data)
    return True


async def _serve(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, upstream_port: int
) -> None:
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    try:
        while True:
            request = bytearray()
            if not await _read_message(client_reader, httptools.HttpRequestParser, request):
                return
            up_writer.write(request)
            response = bytearray()
            if not await _read_message(up_reader, httptools.HttpResponseParser, response):
                return
            client_writer.write(response)
    except (ConnectionError, httptools.HttpParserError):
        return
    finally:
        client_writer.close()
        up_writer.close()


async def main(listen_port: int, upstream_port: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, upstream_port), "127.0.0.1", listen_port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
