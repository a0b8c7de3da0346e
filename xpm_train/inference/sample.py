"""Sample from a checkpoint: ``python -m xpm_train.inference.sample FOLDER PROMPT...`` (a
training job's folder or a Hugging Face model folder)."""

from __future__ import annotations

import argparse
import sys

from xpm_train.data.tokenizers import encode_prompt
from xpm_train.inference.generate import GenerationSettings, generate
from xpm_train.tasks.checkpoint import load_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "job", help="a training job's folder (its final checkpoint) or a Hugging Face model folder"
    )
    parser.add_argument("prompts", nargs="+")
    parser.add_argument("--step", type=int, default=None, help="another checkpoint step")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    loaded = load_checkpoint(args.job, step=args.step)
    longest = max(len(encode_prompt(loaded.tokenizer, prompt)) for prompt in args.prompts)
    room = loaded.max_seq_len - longest
    if room < 1:
        parser.exit(
            2,
            f"error: the longest prompt has {longest} tokens; the model reads at most "
            f"{loaded.max_seq_len} (its max_seq_len): shorten the prompt\n",
        )
    new_tokens = args.max_new_tokens
    if new_tokens > room:
        print(
            f"note: --max-new-tokens {new_tokens} lowered to {room}: the longest prompt has "
            f"{longest} tokens and the model reads at most {loaded.max_seq_len}",
            file=sys.stderr,
        )
        new_tokens = room
    settings = GenerationSettings(new_tokens, args.temperature, args.seed)
    for prompt, completion in zip(
        args.prompts, generate(loaded.model, loaded.tokenizer, args.prompts, settings), strict=True
    ):
        print(f"{prompt}{completion}")


if __name__ == "__main__":
    main()
