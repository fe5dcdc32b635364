"""`predict` throughput on CPU: PyTorch against ONNX Runtime, same model, same inputs, same batching.

The model is serve_load.py's (all-MiniLM-L6-v2 + a 2-label classification head, saved by seqtune),
exported with `seqtune export --format onnx`. Both runtimes predict the SST-2 dev sentences (872)
through `seqtune.load(...).predict`, so tokenization, length-sorted batching and post-processing are
the same and only the model call differs. Best of --repeats runs each, --threads threads each.

    python benchmarks/onnx_predict.py            # writes benchmarks/out/onnx_predict.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import OUT, build_model, sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    import seqtune
    from seqtune.onnx_export import export_onnx

    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(OUT / "serve_load_model")
    start = time.perf_counter()
    export = export_onnx(model_dir, OUT / "serve_load_onnx")
    export_s = time.perf_counter() - start
    texts = sentences()
    results = {"sentences": len(texts), "threads": args.threads, "export_s": round(export_s, 1),
               "export_max_difference": export["max_difference"]}
    predictions = {}
    for runtime, directory in (("torch", model_dir), ("onnx", OUT / "serve_load_onnx")):
        model = seqtune.load(directory, device="cpu", runtime=runtime)
        model.predict(texts[:64])  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictions[runtime] = model.predict(texts)
            times.append(time.perf_counter() - start)
        results[runtime] = {"best_s": round(min(times), 2), "sentences_per_s": round(len(texts) / min(times), 1),
                            "all_s": [round(t, 2) for t in times]}
        print(runtime, json.dumps(results[runtime]), flush=True)
    results["same_labels"] = sum(a["label"] == b["label"] for a, b in zip(predictions["torch"], predictions["onnx"]))
    results["max_probability_difference"] = max(
        abs(a["probabilities"][k] - b["probabilities"][k])
        for a, b in zip(predictions["torch"], predictions["onnx"]) for k in a["probabilities"])
    (OUT / "onnx_predict.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
