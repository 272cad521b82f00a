"""Sequence lengths for both tokenizers: open_clip BPE (EOT is the highest id) and WordPiece ([SEP] = 102, not)."""
import numpy as np
import torch

from formats.text import batch_length, cut_row, sequence_length


def test_wordpiece_sequence_ends_at_sep_not_at_the_highest_id():
    row = np.array([101, 29000, 2417, 102, 0, 0])  # [CLS] <high id> red [SEP] [PAD] [PAD]
    assert sequence_length(row) == 4 and sequence_length(torch.from_numpy(row)) == 4


def test_open_clip_sequence_with_a_zero_inside_ends_at_eot():
    rows = np.array([[49406, 0, 320, 49407, 0, 0], [49406, 49407, 0, 0, 0, 0]])  # id 0 is "!" in open_clip
    assert sequence_length(rows[0]) == 4 and batch_length(rows) == 4 and batch_length(torch.from_numpy(rows)) == 4
    assert cut_row(rows, 1).tolist() == [[49406, 49407]]
