"""Stylise one photo in several styles from Python, loading the backbones once.

    python examples/api_example.py            # pretrained weights (downloaded on first use)
    python examples/api_example.py --steps 20 --clip-checkpoint clip.safetensors --vgg-checkpoint vgg19.pth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clipstyler_opt import Progress, StyleConfig, Stylizer

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=StyleConfig().steps)
    parser.add_argument("--clip-checkpoint", type=Path)
    parser.add_argument("--vgg-checkpoint", type=Path)
    parser.add_argument("--output", type=Path, default=Path("api-example-out"))
    args = parser.parse_args()

    config = StyleConfig(steps=args.steps, clip_checkpoint=args.clip_checkpoint, vgg_checkpoint=args.vgg_checkpoint)
    stylizer = Stylizer(config)  # backbones are loaded once, here

    def report(event: Progress) -> None:
        if event.step % 10 == 0 or event.step == event.total:
            print(f"  step {event.step}/{event.total}  loss {event.losses['total']:.1f}  {event.elapsed:.0f}s")

    for prompt in ["starry night by Vincent van Gogh", "ukiyo-e woodblock print"]:
        print(prompt)
        # each call trains a fresh U-Net; per-call overrides change only this call
        result = stylizer.stylize(HERE / "chelsea.png", prompt, progress=report, seed=1)
        out = args.output / f"chelsea-{prompt.split()[0]}.png"
        result.save(out)  # PNG with the prompt, seed and settings embedded, plus a JSON sidecar
        print(f"  wrote {out} ({result.precision} on {result.device}, final losses {result.losses})")


if __name__ == "__main__":
    main()
