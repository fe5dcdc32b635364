"""`seqtune serve`: an HTTP server for saved models (FastAPI + uvicorn, the `serve` extra).

schemas.py  what POST /predict accepts per task type, size limits, one-line refusals
batcher.py  micro-batching of concurrent requests with a bounded queue
app.py      the FastAPI app
"""
