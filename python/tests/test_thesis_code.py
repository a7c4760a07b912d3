"""The thesis's code's rules from Python, against NumPy twins written as that code computes
them (TheBats/Master-Thesis @ dd4fad3, aggregation.py and preaggregation.py)."""
import numpy as np
import pytest

import byzadam


def segment_distances(x, segments):
    """aggregation.mda's distance: the sum over segments of torch.norm of the difference."""
    n = x.shape[0]
    d = np.zeros((n, n))
    at = 0
    for length in segments:
        block = x[:, at:at + length].astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = block[None, :, :] - block[:, None, :]
            d += np.sqrt((diff ** 2).sum(-1))
        at += length
    return d


def code_mda(x, f, segments):
    d = segment_distances(x, segments)
    largest = np.sort(d, axis=1)[:, -1]           # argsort(distances, 1)[:, -1]: NaN last
    keep = np.argsort(largest, kind="stable")[: x.shape[0] - f]
    return x[np.sort(keep)].astype(np.float64).mean(0)


def code_nnm(x, f, segments):
    d = segment_distances(x, segments)
    order = np.argsort(d, axis=1, kind="stable")[:, : x.shape[0] - f]
    return np.stack([x[np.sort(row)].astype(np.float64).mean(0) for row in order])


@pytest.mark.parametrize("seed", range(5))
def test_largest_distance_filter_is_the_codes_mda(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(15, 40)).astype(np.float32)
    x[[0, 3]] = np.inf                               # two +inf workers
    segments = [8, 30, 2]
    out = byzadam.LargestDistanceFilter(f=5, segments=segments)(x)
    np.testing.assert_allclose(out, code_mda(x, 5, segments), rtol=1e-5, atol=1e-6)
    # Without infinities, and over the whole vector.
    y = rng.normal(size=(11, 20)).astype(np.float32)
    np.testing.assert_allclose(byzadam.LargestDistanceFilter(f=3)(y), code_mda(y, 3, [20]),
                               rtol=1e-5, atol=1e-6)


def test_the_codes_trimmed_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(15, 50)).astype(np.float32)
    expected = np.sort(x, axis=0)[range(6, 10)].astype(np.float64).mean(0)  # sorted_m[range(f+1, n-f)]
    np.testing.assert_allclose(byzadam.TrimmedMean(f=5, low=6)(x), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(byzadam.ByzadamError, match="low \\+ high"):
        byzadam.TrimmedMean(f=5, low=8, high=7)(x)
    with pytest.raises(ValueError, match="low"):
        byzadam.TrimmedMean(f=5, low=-1)


@pytest.mark.parametrize("seed", range(3))
def test_nnm_with_segments_is_the_codes_nnm(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(17, 30)).astype(np.float32)
    segments = [10, 10, 10]
    out = byzadam.NearestNeighborMixing(f=4, segments=segments)(x)
    np.testing.assert_allclose(out, code_nnm(x, 4, segments), rtol=1e-5, atol=1e-6)
    with pytest.raises(byzadam.ByzadamError, match="segments"):
        byzadam.NearestNeighborMixing(f=4, segments=[10, 10])(x)
