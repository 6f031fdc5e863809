"""The ``dice-seg`` command line: one subcommand per job.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Only the chosen module is imported, so ``dice-seg eval``
never pays for importing torch.

Exit status: 0 = the job ran to its end (for ``eval``: the whole bag was read);
2 = an error, printed as one line, with or without a partial report; 130 = Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from dice_seg_ros.errors import DiceSegError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dice_seg_ros.bags.demo",
             "make a small labeled bag, evaluate the shipped model on it, report"),
    "eval": ("dice_seg_ros.bags.evaluate",
             "evaluate a model on a labeled rosbag (Dice/IoU report, plots, output bag)"),
    "make-bag": ("dice_seg_ros.bags.synthetic_bag",
                 "write a labeled rosbag of generated terrain scenes"),
    "mine": ("dice_seg_ros.bags.mine",
             "pick the frames of recordings worth labeling (lowest estimated Dice, spread)"),
    "train": ("dice_seg_ros.learn.train",
              "train a segmentation network with a Dice-family loss"),
    "finetune": ("dice_seg_ros.learn.finetune",
                 "fit a trained network to one camera from a few labeled frames"),
    "export": ("dice_seg_ros.learn.export",
               "export a checkpoint to ONNX and verify it against PyTorch"),
    "calibrate": ("dice_seg_ros.bags.calibrate",
                  "fit the label-free Dice estimate on labeled frames"),
    "fleet": ("dice_seg_ros.bags.fleet",
              "evaluate a model on many labeled bags (processes or Ray)"),
}


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dice-seg",
        description="Dice-trained terrain segmentation: train, export, evaluate on bags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(
            f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items())
        + "\n\nrun 'dice-seg COMMAND --help' for a command's options")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dice-seg COMMAND [options]``; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_level_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command = top.parse_args(argv[:1]).command
    module_name, text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"dice-seg {command}", description=text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (DiceSegError, OSError, ValueError) as exc:
        message = str(exc).replace("\n", " ")
        print(f"dice-seg {command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
