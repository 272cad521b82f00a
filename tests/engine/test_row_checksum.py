"""Row checksums: every single-bit change of a row is caught, swapped rows are caught, blocks agree."""
import numpy as np

from app.engine.row_checksum import row_checksums


def test_every_single_bit_flip_is_caught():
    row = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    base = row_checksums(row)[0]
    words = row.view(np.uint32)
    for w in range(16):
        for bit in range(32):
            flipped = words.copy()
            flipped[0, w] ^= np.uint32(1 << bit)
            assert row_checksums(flipped.view(np.float32))[0] != base, (w, bit)


def test_swapped_rows_and_block_boundaries():
    m = np.random.default_rng(1).normal(size=(40_000, 8)).astype(np.float32)
    sums = row_checksums(m)
    assert sums.dtype == np.int64 and sums.min() >= 0 and sums.max() < 2**32
    assert len(np.unique(sums[:4000])) == 4000  # 4k random rows: a 32-bit collision has p ~ 0.2%
    np.testing.assert_array_equal(row_checksums(m[::-1]), sums[::-1])
    np.testing.assert_array_equal(np.concatenate([row_checksums(m[:123]), row_checksums(m[123:])]), sums)
    np.testing.assert_array_equal(row_checksums(m[20_000:20_001]), sums[20_000:20_001])  # past a block boundary
