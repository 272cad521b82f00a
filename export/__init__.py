"""Package a student checkpoint for phones: Core ML and ExecuTorch bundles, verified against PyTorch.

python -m export.executorch  [--checkpoint runs/offline] [--precision fp32|int8]   -> bundles/offline-executorch[-int8]
python -m export.coreml      [--checkpoint runs/offline] [--precision fp16|fp32|int8] -> bundles/offline-coreml[-...]
python -m export.parity      [--bundle DIR ...]   table of cosines and recall@K, exported vs PyTorch
"""
