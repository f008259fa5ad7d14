# A real PostgreSQL server for the head-end tests (tools/pgserver.py), and the store fixtures.
#
#     from pg import pg_server, store_url    # noqa: F401  (pytest fixtures)
#
# pg_server: one throwaway server per test module (initdb ~1 s); store_url: parametrised
# over "sqlite" (a file in tmp_path) and "postgresql" (a fresh database on that server), so a
# test that takes store_url runs on both backends with the same schema.

import itertools

import pytest

import pgserver

_names = itertools.count(1)


@pytest.fixture(scope="module")
def pg_server():
    with pgserver.PgServer() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "headend.db")
    pg = request.getfixturevalue("pg_server")
    return pg.create_db("t%d" % next(_names))
