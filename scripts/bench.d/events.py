"""Load for the bench's `events` step: a webhook sink and watch streams.

Usage: events.py SINK_PORT BROKER_PORT TOKEN IDS_FILE TENANT_WIDE
Answers every POST on SINK_PORT with 204 (keep-alive), opens one watch stream
(`Accept: text/event-stream`) per allocation id in IDS_FILE and TENANT_WIDE more on
`/v1/events`, reads and discards what they send, and prints `streams open N` once
all answered 200. Runs until killed."""
import asyncio
import sys

sink_port, broker_port, token, ids_file, tenant_wide = sys.argv[1:6]


async def sink(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def watch(path, opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(broker_port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    status = await reader.readline()
    if b" 200 " in status:
        opened.append(path)
    while await reader.read(65536):
        pass


async def main():
    await asyncio.start_server(sink, "127.0.0.1", int(sink_port))
    ids = [line.strip() for line in open(ids_file) if line.strip()]
    paths = [f"/v1/allocations/{i}/events" for i in ids] + ["/v1/events"] * int(tenant_wide)
    opened = []
    tasks = []
    for path in paths:
        tasks.append(asyncio.create_task(watch(path, opened)))
        await asyncio.sleep(0.001)
    while len(opened) < len(paths) and not all(t.done() for t in tasks):
        await asyncio.sleep(0.1)
    print(f"streams open {len(opened)}", flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.Event().wait()


asyncio.run(main())
