"""The app path equals the training path: the benchmark's test images indexed as a gallery and queried with
their captions through the engine give the same recall@K as compression's evaluation of the same student."""
from pathlib import Path

import numpy as np
import pytest
import torch

from app.desktop.models import load_model
from app.engine.engine import SearchEngine
from compression.checkpoint import load_student
from compression.data.loading import load_datasets
from compression.data.synthetic import write_split_as_folder
from compression.data.transforms import image_transform
from compression.models.teacher import Preprocess, build_tokenizer
from compression.pipeline import evaluate_model
from compression.stages import PhaseContext

KS = (1, 5, 10)
SYNTHETIC_RUN = Path(__file__).resolve().parents[2] / "runs" / "synthetic"  # make run-synthetic


def engine_text_to_image_recall(engine: SearchEngine, split, folder: Path) -> dict[str, float]:
    """t2i recall@K in percent: a caption is a hit at K if its image is among the engine's top K."""
    images = folder / "images"
    names = [str(images / (Path(str(n)).name + ".png")) for n in split.names]
    texts, owner = split.flat_captions()
    ranks = []
    for text, i in zip(texts, owner):
        paths = [r.path for r in engine.search_text(text, k=max(KS))]
        ranks.append(paths.index(names[i]) if names[i] in paths else max(KS))
    ranks = np.asarray(ranks)
    return {f"t2i_R@{k}": 100.0 * float((ranks < k).mean()) for k in KS}


def check_parity(run_dir: Path, split, tmp_path: Path) -> dict[str, float]:
    folder = tmp_path / "benchmark-gallery"
    write_split_as_folder(split, folder)
    # one PyTorch thread: one query at a time on a small model is fastest so (the fixture restores it)
    with SearchEngine(tmp_path / "data", load_model(run_dir, threads=1)) as engine:
        update = engine.update([folder / "images"])
        assert update.index.indexed == len(split) and not update.index.skipped
        ours = engine_text_to_image_recall(engine, split, folder)

    student, meta = load_student(run_dir)
    pre = Preprocess(meta["preprocess"]["image_size"], tuple(meta["preprocess"]["mean"]), tuple(meta["preprocess"]["std"]))
    tok = meta["tokenizer"]
    ctx = PhaseContext(transform=image_transform(pre), tokenizer=build_tokenizer(tok["model"], tok["context_length"]),
                       device=torch.device("cpu"), seed=0, checkpoint=None, progress=False)
    theirs = evaluate_model(student, split, ctx, list(KS), batch_size=64)
    for key, value in ours.items():
        # recall is a count over C captions (steps of 100/C %); the evaluation averages in float32
        assert value == pytest.approx(theirs[key], abs=1e-3), (key, ours, theirs)
    return ours


def test_engine_recall_equals_evaluation_recall(tiny_run, tmp_path):
    cfg, root, _ = tiny_run
    split = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False).test
    check_parity(root / "runs" / "tiny", split, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (SYNTHETIC_RUN / "student.json").is_file(), reason="runs/synthetic has no finished student yet")
def test_engine_recall_equals_evaluation_recall_on_the_synthetic_benchmark(tmp_path):
    """The real thing: the synthetic benchmark's 1000 test images and their captions (runs/synthetic)."""
    from compression.checkpoint import read_json
    from compression.config import config_from_dict
    from compression.run import default_cache_dir

    cfg = config_from_dict(read_json(SYNTHETIC_RUN / "config.json", "run config"))
    split = load_datasets(cfg.data, default_cache_dir(), need_pretrain=False, progress=False).test
    check_parity(SYNTHETIC_RUN, split, tmp_path)


def test_teacher_reranking_of_the_top_m(tiny_run, tmp_path):
    """Two-stage search: the student's top M re-scored by the run's fine-tuned teacher."""
    from app.desktop.rerank import TeacherReranker

    cfg, root, _ = tiny_run
    run_dir = root / "runs" / "tiny"
    split = load_datasets(cfg.data, root / "cache", need_pretrain=False, progress=False).test
    folder = tmp_path / "g"
    write_split_as_folder(split, folder)
    assert TeacherReranker.available(run_dir)
    reranker = TeacherReranker(run_dir)
    with SearchEngine(tmp_path / "data", load_model(run_dir, threads=1), reranker=reranker) as engine:
        engine.update([folder / "images"])
        caption = split.captions[0][0]
        student = engine.search_text(caption, k=10)
        reranked = engine.search_text(caption, k=5, rerank_top_m=10)
    assert len(reranked) == 5 and {r.path for r in reranked} <= {r.path for r in student}
    assert [r.score for r in reranked] == sorted((r.score for r in reranked), reverse=True)
    assert reranked != student[:5]  # teacher scores, not the student's
