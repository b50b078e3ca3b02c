"""The key of the email and phone hashes (docs/tables.md, "staging.stg_customers", Privacy).

The hash itself is the SQL macro keyed_hash (sql/macros/rules.sql): HMAC-SHA256 computed in
the warehouse, so it scales; this module gives the connection the key's pads.
"""

import hashlib

import duckdb


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer pads of an HMAC-SHA256 key (RFC 2104): 64 bytes each."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def set_key(conn: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Set the variables pii_inner_pad and pii_outer_pad (BLOB) that keyed_hash reads."""
    inner, outer = hmac_pads(key)
    conn.execute("set variable pii_inner_pad = ?::blob", [inner])
    conn.execute("set variable pii_outer_pad = ?::blob", [outer])
