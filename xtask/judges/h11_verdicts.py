"""h11's verdict on the framing of the first HTTP/1.1 request in each input.

Reads a JSON list of hex strings on stdin; writes a JSON list of verdicts,
one per input: ["complete", N] (the first request, head and body, is N
bytes), ["incomplete"] or ["error", "h11's message"]. Run by xtask
(xtask/src/judges.rs), which compares them with Skiff's parser.
"""
import json
import sys

import h11


def verdict(data: bytes):
    conn = h11.Connection(our_role=h11.SERVER, max_incomplete_event_size=1 << 20)
    try:
        conn.receive_data(data)
    except h11.RemoteProtocolError as e:
        return ["error", str(e)]
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return ["incomplete"]
            if isinstance(event, h11.EndOfMessage):
                rest, _closed = conn.trailing_data
                return ["complete", len(data) - len(rest)]
            if isinstance(event, h11.ConnectionClosed):
                return ["incomplete"]
    except h11.RemoteProtocolError as e:
        return ["error", str(e)]


def main():
    inputs = json.load(sys.stdin)
    json.dump([verdict(bytes.fromhex(h)) for h in inputs], sys.stdout)


if __name__ == "__main__":
    main()
