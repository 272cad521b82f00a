"""formats.run_card: student.json of a run directory, read and checked with errors naming the file and key."""
from __future__ import annotations

import gzip
import json

import pytest

from formats.errors import FormatError
from formats.model_dir import RUN, resolve_model
from formats.preprocess import Preprocess
from formats.run_card import (
    ASSEMBLED_STUDENT,
    CLIP_STUDENT,
    FORMAT_VERSION,
    PREPROCESS,
    RUN_CARD,
    SPEC,
    TOKENIZER,
    VERSION,
    read_run_card,
)
from formats.tokenizer_files import BPE, BPE_FILE, VOCAB_FILE, WORDPIECE, TokenizerFiles

PRE = Preprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _clip_run(root, **tokenizer):
    root.mkdir(exist_ok=True)
    card = {VERSION: FORMAT_VERSION, SPEC: {"embed_dim": 8}, PREPROCESS: PRE.to_dict(),
            TOKENIZER: {"kind": "open_clip", "model": "synthclip-tiny", "context_length": 32, **tokenizer}}
    (root / RUN_CARD).write_text(json.dumps(card))
    return root


def test_an_open_clip_run_round_trips_with_its_bpe_file(tmp_path):
    run = _clip_run(tmp_path / "run", bpe_file=BPE_FILE)
    with gzip.open(run / BPE_FILE, "wt") as f:
        f.write("#version: 0.2\n")
    card = read_run_card(run)
    assert (card.kind, card.run_dir, card.preprocess()) == (CLIP_STUDENT, run, PRE)
    assert card.tokenizer_files() == TokenizerFiles(BPE, run / BPE_FILE)
    assert resolve_model(run).kind == RUN


def test_a_run_written_before_it_carried_the_file_still_reads(tmp_path):
    assert read_run_card(_clip_run(tmp_path / "old")).tokenizer_files() is None


def test_an_assembled_run_names_its_wordpiece_vocabulary(tmp_path):
    (tmp_path / RUN_CARD).write_text(json.dumps({"kind": ASSEMBLED_STUDENT, PREPROCESS: PRE.to_dict(),
                                                 TOKENIZER: {"kind": WORDPIECE, "vocab": VOCAB_FILE}}))
    card = read_run_card(tmp_path)
    assert card.kind == ASSEMBLED_STUDENT
    with pytest.raises(FormatError, match=rf"vocabulary file .*{VOCAB_FILE} \(named in .*student.json\) not found"):
        card.tokenizer_files()
    (tmp_path / VOCAB_FILE).write_text("[PAD]\n")
    assert card.tokenizer_files() == TokenizerFiles(WORDPIECE, tmp_path / VOCAB_FILE)


@pytest.mark.parametrize(("card", "message"), [
    ({"kind": "mystery"}, r"student.json: kind 'mystery', expected one of"),
    ({VERSION: 2, SPEC: {}}, r"student.json: format_version 2 or 'spec' missing"),
    ({VERSION: FORMAT_VERSION}, r"student.json: format_version 1 or 'spec' missing"),
])
def test_a_bad_card_is_named(tmp_path, card, message):
    (tmp_path / RUN_CARD).write_text(json.dumps(card))
    with pytest.raises(FormatError, match=message):
        read_run_card(tmp_path)


def test_bad_sections_name_the_file_and_key(tmp_path):
    run = _clip_run(tmp_path, bpe_file="../escape.gz")
    card = read_run_card(run)
    with pytest.raises(FormatError, match=r"student.json: tokenizer: bpe_file names BPE file '../escape.gz'"):
        card.tokenizer_files()
    data = json.loads((run / RUN_CARD).read_text())
    data[PREPROCESS] = {"image_size": 32}
    data[TOKENIZER] = "open_clip"
    (run / RUN_CARD).write_text(json.dumps(data))
    card = read_run_card(run)
    with pytest.raises(FormatError, match=r"student.json: preprocess: needs image_size, mean and std"):
        card.preprocess()
    with pytest.raises(FormatError, match=r"student.json: tokenizer: the tokenizer description is a str"):
        card.tokenizer()


def test_missing_or_broken_card_names_the_file(tmp_path):
    with pytest.raises(FormatError, match=r"student config .*student.json not found"):
        read_run_card(tmp_path)
    (tmp_path / RUN_CARD).write_text("{")
    with pytest.raises(FormatError, match="student.json is not valid JSON"):
        read_run_card(tmp_path)
