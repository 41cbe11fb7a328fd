"""Split/merge partition every pixel exactly once and invert exactly, for any size and level count."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hyreslib.hidenet.split import level_shapes, merge, merge_once, orient, split, split_axis

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 37), st.integers(1, 37))


@settings(max_examples=150, deadline=None)
@given(shape=shapes, levels=st.integers(0, 12), lead=st.integers(0, 2))
def test_merge_inverts_split_and_partitions(shape, levels, lead):
    b, c, h, w = shape
    full = (b, c, h, w)[2 - lead:] if lead < 2 else (b, c, h, w)
    # Unique values: the pieces must hold every index exactly once.
    x = torch.arange(int(torch.tensor(full).prod())).reshape(full)
    pyr = split(x, levels)
    assert torch.equal(merge(pyr.base, pyr.odds), x)
    pieces = torch.cat([pyr.base.flatten(), *(o.flatten() for o in pyr.odds)])
    assert torch.equal(pieces.sort().values, x.flatten())


@settings(max_examples=100, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), levels=st.integers(0, 14))
def test_level_shapes_match_the_tensors(h, w, levels):
    pyr = split(torch.zeros(3, h, w), levels)
    shapes = level_shapes(h, w, levels)
    assert [tuple(o.shape[-2:]) for o in pyr.odds] == [odd for _, odd in shapes]
    if levels:
        assert tuple(pyr.base.shape[-2:]) == shapes[-1][0]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), levels=st.integers(1, 8), data=st.data())
def test_partial_merge_is_the_even_set(h, w, levels, data):
    x = torch.rand(2, 3, h, w)
    pyr = split(x, levels)
    k = data.draw(st.integers(0, levels))
    expected = split(x, levels - k).base
    assert torch.equal(merge(pyr.base, pyr.odds, upto=k), expected)


def test_level_axes_alternate_and_even_takes_the_ceiling():
    assert [split_axis(k) for k in range(4)] == [-1, -2, -1, -2]
    x = torch.arange(5 * 7).reshape(1, 5, 7)
    pyr = split(x, 2)
    assert pyr.odds[0].shape[-2:] == (5, 3)        # columns 1, 3, 5
    assert pyr.odds[1].shape[-2:] == (2, 4)        # rows 1, 3 of the even columns
    assert pyr.base.shape[-2:] == (3, 4)
    assert torch.equal(pyr.odds[0][0, 0], torch.tensor([1, 3, 5]))


def test_orient_makes_the_split_axis_last():
    x = torch.rand(1, 3, 4, 6)
    assert orient(x, 0) is x
    assert orient(x, 1).shape == (1, 3, 6, 4)
    assert torch.equal(orient(orient(x, 1), 1), x)


def test_bad_merges_raise():
    with pytest.raises(ValueError):
        merge_once(torch.zeros(3, 4, 4), torch.zeros(3, 4, 2), -1)
    with pytest.raises(ValueError):
        merge_once(torch.zeros(3, 4, 4), torch.zeros(3, 5, 4), -1)
    with pytest.raises(ValueError):
        split(torch.zeros(3), 1)
    with pytest.raises(ValueError):
        merge(torch.zeros(1, 2), [], upto=1)


def test_split_merge_on_gpu(cuda):
    x = torch.randint(0, 256, (2, 3, 33, 17), device=cuda, dtype=torch.uint8)
    pyr = split(x, 7)
    assert pyr.base.device.type == "cuda"
    assert torch.equal(merge(pyr.base, pyr.odds), x)
