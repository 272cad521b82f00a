"""The regex-free CLIP split equals open_clip's ``regex`` pattern, and the tokenizer works without ``regex``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.clip_split import clip_split

REPO = Path(__file__).resolve().parents[2]
PATTERN = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)
# characters the split treats specially, mixed with any character Python's Unicode database has assigned
TRICKY = list("'sStTrReEvVmMlLdD<>_ ofxna\u017f\u212a\t\n\x1c\x1f\u00a0\u3000!?.,-")
ASSIGNED = st.characters(blacklist_categories=("Cn", "Cs"))  # unassigned in Python 3.11's Unicode 14, surrogates


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TRICKY), ASSIGNED,
                          st.sampled_from(["<start_of_text>", "<END_OF_TEXT>", "'ll", "'RE", "'ſ"])), max_size=40))
def test_the_split_equals_the_regex_pattern(parts):
    text = "".join(parts)
    assert clip_split(text) == PATTERN.findall(text)


def test_fixed_cases():
    for text in ["it's they're we've i'm you'll he'd", "a<start_of_text>b!<end_of_text>", "''s x'", "东京の写真 фото 123",
                 "🐱 cat on a 🛋️ sofa", "naïve café — “quoted”"]:
        assert clip_split(text) == PATTERN.findall(text), text


PROBE = """
import builtins, json, sys
real_import = builtins.__import__
def no_regex(name, *args, **kwargs):
    if name == "regex" or name.startswith("regex."):
        raise ModuleNotFoundError("No module named 'regex'")  # as on iOS: kivy-ios has no regex recipe
    return real_import(name, *args, **kwargs)
builtins.__import__ = no_regex
from app.engine.runtimes.bundle import read_bundle
print(json.dumps(read_bundle(sys.argv[1]).tokenizer.encode_query(sys.argv[2]).tolist()))
"""


def test_a_bundle_opens_and_tokenizes_without_regex(fake_bundle):
    """Defect: on iOS the BPE tokenizer's `import regex` failed, so no bundle could be opened."""
    from app.engine.runtimes.bundle import read_bundle

    query = "It's a RED circle, isn't it? 🐱 東京"
    out = subprocess.run([sys.executable, "-c", PROBE, str(fake_bundle), query], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == read_bundle(fake_bundle).tokenizer.encode_query(query).tolist()
    assert unicodedata.unidata_version  # the split's categories come from here
