"""Every on-disk contract between compression/, export/ and app/, defined once (stdlib + numpy only).

Which module owns which file or rule:

* ``preprocess``  -- the image preprocessing a model was trained with (``student.json["preprocess"]``,
  the bundle manifest's ``image`` section): size, mean/std, resize rule;
* ``text``        -- how long a token sequence is: ids are cut right after EOT (the highest id);
* ``manifest``    -- ``manifest.json`` of an export bundle: read, verify (sha256), accepted text lengths;
* ``tokenizer_files`` -- a tokenizer's files by kind (open_clip BPE merges, WordPiece ``vocab.txt``) and the
  ``tokenizer.json`` that names them;
* ``run_card``    -- ``student.json`` of a run directory: file names, keys, kinds, checked reading;
* ``model_dir``   -- what is at ``--model``: a run directory, a bundle, or a folder of bundles;
* ``jsonfile`` / ``atomic`` / ``digest`` -- reading JSON with errors that name the file, writing
  files atomically, sha256 of files;
* ``errors`` / ``cli`` -- the one base of user-facing errors and the one wrapper every entry point
  runs its ``main`` in.

Writers that need torch (checkpoints, programs, tokenizer files copied from open_clip or the language
model) stay in ``compression/`` and ``export/``; the phone engine imports this package and nothing of theirs.
"""
