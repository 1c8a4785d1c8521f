#!/usr/bin/env python3
"""A TCP proxy that timestamps the bytes clients send (stdlib only).

    python3 bench/byteproxy.py LISTEN_PORT TARGET_PORT LOG

Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT and appends
"<monotonic seconds> <bytes>" to LOG for every chunk sent towards the target,
so bench/s3.sh can measure upload rates over any one-second window as the
network saw them, independent of what the sender claims.
"""
import asyncio
import sys
import time

LISTEN, TARGET, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = open(LOG, "a", buffering=1)


async def pipe(reader, writer, record):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if record:
                log.write(f"{time.monotonic():.6f} {len(data)}\n")
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(creader, cwriter):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pipe(creader, swriter, True), pipe(sreader, cwriter, False))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
