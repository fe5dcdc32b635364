"""seqtune fill-mask MODEL TEXT [TEXT ...] [--top-k K]"""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "fill-mask", help="show a masked language model's top predictions for [MASK] tokens",
        description="Predict the tokens at each [MASK] of TEXT, e.g. seqtune fill-mask runs/x/model "
                    "\"MKT[MASK]YIAK\" (<mask> for RoBERTa, XLM-R and ESM models). MODEL is a directory "
                    "saved by seqtune pretrain, or a Hugging Face BERT, RoBERTa, XLM-R, DistilBERT or ESM "
                    "checkpoint with its MLM head (cls.predictions.*, lm_head.*, vocab_*).",
    )
    p.add_argument("model", help="model directory (config.json, weights, tokenizer)")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="text or sequence with one or more [MASK] (or <mask>)")
    p.add_argument("--top-k", type=int, default=5, help="predictions shown per mask token (default 5)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    return p


def run(args) -> int:
    from seqtune.inference import fill_mask, load_masked_lm

    model, tokenizer = load_masked_lm(args.model, args.device)
    for text, slots in zip(args.texts, fill_mask(model, tokenizer, args.texts, args.top_k)):
        print(text)
        for slot in slots:
            shown = "  ".join(f"{p['token']} {p['probability']:.3f}" for p in slot["predictions"])
            print(f"  {tokenizer.special['mask']} at token {slot['position']}: {shown}")
    return 0
