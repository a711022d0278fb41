import pytest


@pytest.mark.unit
def test_fails(server):
    assert False


@pytest.mark.unit
def test_after(server):
    pass
