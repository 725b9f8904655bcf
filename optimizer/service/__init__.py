"""The real-time decision service of issue 15 (``contactplan serve``).

Modules: :mod:`~optimizer.service.state` (streaming feature state),
:mod:`~optimizer.service.model` (features, masks, response model, model registry),
:mod:`~optimizer.service.embeddings` (truncated SVD embeddings, hnswlib candidates),
:mod:`~optimizer.service.governance` (safe modes, rollback trigger, knob tuning),
:mod:`~optimizer.service.engine` (the in-process decision engine and its records),
:mod:`~optimizer.service.app` (the FastAPI app) and :mod:`~optimizer.service.demo`.
Nothing heavy (fastapi, uvicorn, hnswlib) is imported here.
"""
