"""The provider plugins' HTTP/1.1 client (:mod:`robutler_specs.httpclient`): its parser against
any framing and any split of the bytes, and its pool against a real socket server that
misbehaves in the ways upstreams do."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_specs.httpclient import (
    ConnectError,
    Disconnected,
    HTTPPool,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
    _Connection,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- the parser, fed any split of any well-framed answer


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class _Pool:
    def _lost(self, conn: _Connection) -> None: ...


def _encode(status: int, headers: list[tuple[str, str]], body: bytes, framing: str, sizes: list[int]) -> bytes:
    head = [f"HTTP/1.1 {status} Whatever", *(f"{k}: {v}" for k, v in headers)]
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        parts, at = [], 0
        for size in sizes or [len(body)]:
            piece = body[at : at + max(size, 1)]
            at += len(piece)
            if piece:
                parts.append(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        if at < len(body):
            parts.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
        payload = b"".join(parts) + b"0\r\nTrailer: x\r\n\r\n"
    else:  # framed by the close
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


_header_names = st.from_regex(r"X-[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True)
_header_values = st.from_regex(r"[ -~]{0,30}", fullmatch=True).map(str.strip)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(200, 599).filter(lambda s: s not in (204, 304)),
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=5),
    body=st.binary(max_size=3000),
    framing=st.sampled_from(["length", "chunked", "close"]),
    sizes=st.lists(st.integers(1, 700), max_size=8),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    interim=st.booleans(),
)
def test_any_answer_in_any_pieces_parses_to_itself(status: int, headers: list[tuple[str, str]], body: bytes,
                                                    framing: str, sizes: list[int], cuts: list[int],
                                                    interim: bool) -> None:
    data = _encode(status, headers, body, framing, sizes)
    if interim:
        data = b"HTTP/1.1 100 Continue\r\n\r\n" + data
    conn = _Connection(_Pool())  # type: ignore[arg-type]
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    conn._reset()
    at = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > at:
            conn.data_received(data[at:cut])
            at = cut
    if framing == "close":
        assert not conn.body_done
        conn.connection_lost(None)
    assert conn._error is None
    assert conn.head_done and conn.body_done
    assert conn.status == status
    expected: dict[str, str] = {}
    for k, v in headers:
        key = k.lower()
        expected[key] = f"{expected[key]}, {v}" if key in expected else v
    assert all(conn.headers[k] == v for k, v in expected.items())
    assert b"".join(conn.body) == body
    assert conn.keep_alive == (framing != "close")


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=2000), framing=st.sampled_from(["length", "chunked"]),
       keep=st.floats(0, 0.999))
def test_an_answer_cut_short_is_never_whole(body: bytes, framing: str, keep: float) -> None:
    data = _encode(200, [], body, framing, [97])
    head_end = data.index(b"\r\n\r\n") + 4
    cut = head_end + int((len(data) - head_end) * keep)
    conn = _Connection(_Pool())  # type: ignore[arg-type]
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    conn.data_received(data[:cut])
    conn.connection_lost(None)
    assert not conn.body_done
    assert isinstance(conn._error, Disconnected)


@pytest.mark.parametrize("garbage", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000,
])
def test_bytes_that_are_not_an_answer_are_a_protocol_error(garbage: bytes) -> None:
    conn = _Connection(_Pool())  # type: ignore[arg-type]
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(garbage)
    assert isinstance(conn._error, ProtocolError)
    assert transport.closed


# -- the pool, against a real server


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server on a free port; yields its URL and a list counting its connections."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        srv.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        request = await read_request(reader)
        writer.write(ok(request.split(b"\r\n\r\n", 1)[1] or b"empty"))
        await writer.drain()


def test_requests_reuse_one_connection() -> None:
    async def main() -> None:
        async with server(answer_each) as (url, connections):
            pool = HTTPPool(url)
            head = pool.head("POST", "/v1/x", [("Content-Type", "application/json")])
            for i in range(5):
                response = await pool.request(head, b"body %d" % i)
                assert response.status == 200
                assert await response.read() == b"body %d" % i
                response.release()
            assert len(connections) == 1
            await pool.close()

    run(main())


def test_a_chunked_body_arrives_piece_by_piece() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for word in (b"one ", b"two ", b"three"):
            writer.write(b"%x\r\n%s\r\n" % (len(word), word))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the connection is reused for a second request
        writer.write(ok(b"again"))
        await writer.drain()
        await asyncio.sleep(1)

    async def main() -> None:
        async with server(handler) as (url, connections):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"{}")
            pieces = [piece async for piece in response.iter_any()]
            assert len(pieces) >= 2 and b"".join(pieces) == b"one two three"
            assert response.at_eof()
            response.release()
            second = await pool.request(pool.head("POST", "/"), b"{}")
            assert await second.read() == b"again"
            second.release()
            assert len(connections) == 1
            await pool.close()

    run(main())


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_connection_closed_mid_body_is_an_error_not_a_short_answer(framing: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if framing == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nonly\r\n")
        await writer.drain()

    async def main() -> None:
        async with server(handler) as (url, _):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"{}")
            with pytest.raises(Disconnected, match="middle of the answer's body"):
                await response.read()
            response.release()
            assert pool.open_connections == 0
            await pool.close()

    run(main())


def test_a_body_framed_by_the_close_is_whole_at_the_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()

    async def main() -> None:
        async with server(handler) as (url, _):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"{}")
            assert await response.read() == b"all of it"
            response.release()
            assert pool.open_connections == 0
            await pool.close()

    run(main())


def test_silence_is_a_read_timeout_before_and_during_the_body() -> None:
    calls: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(1)  # the first request: nothing at all
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(1)

    async def main() -> None:
        async with server(handler) as (url, connections):
            pool = HTTPPool(url, read_timeout=0.2)
            with pytest.raises(ReadTimeout):
                await pool.request(pool.head("POST", "/"), b"{}")
            response = await pool.request(pool.head("POST", "/"), b"{}")
            with pytest.raises(ReadTimeout):
                await response.read()
            response.release()
            assert len(connections) == 2  # the timed-out connection was not reused
            await pool.close()

    run(main())


def test_nothing_listening_is_a_connect_error_naming_the_cause() -> None:
    async def main() -> None:
        async with server(answer_each) as (url, _):
            pass  # closed: nothing listens on that port any more
        pool = HTTPPool(url)
        with pytest.raises(ConnectError) as caught:
            await pool.request(pool.head("POST", "/"), b"{}")
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        assert pool.open_connections == 0

    run(main())


def test_a_full_pool_waits_connect_timeout_then_says_so() -> None:
    arrived: list[None] = []
    answer = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.append(None)
        await answer.wait()  # the two held requests are answered once the third has given up
        writer.write(ok(b"late"))
        await writer.drain()
        await answer_each(reader, writer)

    async def main() -> None:
        async with server(handler) as (url, connections):
            # Connecting gets seconds (a busy machine); waiting for a free connection, 0.1 s.
            pool = HTTPPool(url, max_connections=2, connect_timeout=5)
            head = pool.head("POST", "/")
            held = [asyncio.create_task(pool.request(head, b"{}")) for _ in range(2)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(arrived) < 2 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert len(arrived) == 2
            pool.connect_timeout = 0.1
            started = loop.time()
            with pytest.raises(PoolTimeout, match="all 2 connections are in use"):
                await pool.request(head, b"{}")
            assert 0.08 < loop.time() - started < 1.0  # it waited, and not for ever
            # A call that waits long enough gets the first connection to come free.
            waiting = asyncio.create_task(HTTPPool.request(pool, head, b"{}"))
            pool.connect_timeout = 5.0
            answer.set()
            for task in held:
                response = await task
                assert await response.read() == b"late"
                response.release()
            assert pool.open_connections == 2
            third = await waiting
            third.release()
            assert len(connections) == 2
            await pool.close()

    run(main())


def test_an_idle_connection_the_upstream_closed_is_retried_once_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"first"))
        await writer.drain()
        # The upstream's keep-alive ends: it closes the idle connection, announcing nothing.

    async def main() -> None:
        async with server(handler) as (url, connections):
            pool = HTTPPool(url)
            head = pool.head("POST", "/")
            first = await pool.request(head, b"{}")
            assert await first.read() == b"first"
            first.release()
            await asyncio.sleep(0.05)  # the close has arrived: the idle connection is dropped
            second = await pool.request(head, b"{}")
            assert await second.read() == b"first"
            second.release()
            assert len(connections) == 2
            await pool.close()

    run(main())


def test_an_upstream_that_drops_a_new_connection_is_disconnected() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # then closes without a word

    async def main() -> None:
        async with server(handler) as (url, connections):
            pool = HTTPPool(url)
            with pytest.raises(Disconnected, match="before an answer"):
                await pool.request(pool.head("POST", "/"), b"{}")
            assert len(connections) == 1  # a new connection is not retried
            assert pool.open_connections == 0

    run(main())


def test_connection_close_and_interim_answers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done", b"Connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(1)

    async def main() -> None:
        async with server(handler) as (url, _):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"{}")
            assert response.status == 200
            assert await response.read() == b"done"
            response.release()
            assert pool.open_connections == 0  # not kept: the upstream said it closes
            await pool.close()

    run(main())


def test_a_cancelled_call_drops_its_connection() -> None:
    seen_close = asyncio.Event

    async def main() -> None:
        closed = seen_close()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await reader.read()  # returns at the client's close
            closed.set()

        async with server(handler) as (url, _):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"{}")
            pieces = response.iter_any()
            assert await pieces.__anext__() == b"abc"
            task = asyncio.create_task(pieces.__anext__())
            await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            response.close()
            await asyncio.wait_for(closed.wait(), 2)
            assert pool.open_connections == 0

    run(main())


def test_a_large_body_is_read_whole_under_backpressure() -> None:
    body = bytes(range(256)) * 24_000  # about 6 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(body))
        await writer.drain()
        await asyncio.sleep(1)

    async def main() -> None:
        async with server(handler) as (url, _):
            pool = HTTPPool(url)
            response = await pool.request(pool.head("POST", "/"), b"x" * 3_000_000)
            received = bytearray()
            async for piece in response.iter_any():
                received += piece
                await asyncio.sleep(0)
            assert bytes(received) == body
            response.release()
            await pool.close()

    run(main())


def test_headers_with_line_breaks_are_refused() -> None:
    pool = HTTPPool("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="line break"):
        pool.head("POST", "/", [("X-Evil", "a\r\nInjected: yes")])
    with pytest.raises(ValueError, match="http:// or https://"):
        HTTPPool("ftp://example.com")
    assert HTTPPool("https://api.example.com/v1").authority == "api.example.com"
    assert HTTPPool("http://[::1]:8080").authority == "[::1]:8080"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_with_the_server_name_checked_and_one_lookup_for_many_connections(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)

    async def main() -> None:
        srv = await asyncio.start_server(answer_each, "127.0.0.1", 0, ssl=server_tls)
        port = srv.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        lookups: list[str] = []
        real = loop.getaddrinfo

        async def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
            lookups.append(host)
            return await real(host, *args, **kwargs)

        loop.getaddrinfo = counting  # type: ignore[method-assign]
        try:
            # The system's trust store does not know this certificate: refused.
            strict = HTTPPool(f"https://localhost:{port}")
            with pytest.raises(ConnectError) as caught:
                await strict.request(strict.head("POST", "/"), b"{}")
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
            # Trusted, ten calls at once: ten connections, one lookup of the name.
            client_tls = ssl.create_default_context(cafile=str(cert_file))
            pool = HTTPPool(f"https://localhost:{port}", ssl_context=client_tls)
            lookups.clear()

            async def one(i: int) -> bytes:
                response = await pool.request(pool.head("POST", "/"), b"call %d" % i)
                try:
                    return await response.read()
                finally:
                    response.release()

            answers = await asyncio.gather(*(one(i) for i in range(10)))
            assert answers == [b"call %d" % i for i in range(10)]
            assert lookups == ["localhost"]
            assert pool.open_connections == 10
            await pool.close()
        finally:
            loop.getaddrinfo = real  # type: ignore[method-assign]
            srv.close()

    run(main())
