"""Fuzz the FastAGI parsers: any bytes give a parsed value or a protocol error, quickly."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.agi_protocol import AgiEnv, AgiError, AgiProtocolError, parse_header_block, parse_result
from ivr.fastagi import EarlyClose, read_headers

header_like = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.builds(
            lambda k, v: f"agi_{k}: {v}\n".encode(),
            st.text(alphabet="abcz_09", max_size=12),
            st.text(max_size=40),
        ),
        st.just(b"\n"),
        st.just(b"\r\n"),
    ),
    max_size=20,
).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(header_like)
def test_header_block_parser_never_crashes(data):
    try:
        env = parse_header_block(data)
    except AgiProtocolError:
        return
    assert isinstance(env, AgiEnv)
    assert all(k.startswith("agi_") for k in env.values)
    assert all("\n" not in v and "\r" not in v for v in env.values.values())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_result_parser_never_crashes(line):
    try:
        parse_result(line)
    except AgiError:
        pass


@settings(max_examples=100, deadline=None)
@given(header_like)
def test_stream_header_reader_terminates(data):
    """The socket-side reader on arbitrary bytes then EOF: a result or an error, never a hang."""

    async def read():
        reader = asyncio.StreamReader(limit=4096)
        reader.feed_data(data)
        reader.feed_eof()
        return await asyncio.wait_for(read_headers(reader), 1.0)

    try:
        env = asyncio.run(read())
    except (AgiProtocolError, EarlyClose):
        return
    assert isinstance(env, AgiEnv)
