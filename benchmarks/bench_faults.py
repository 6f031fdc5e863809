"""Fault injection: ``dice-seg eval`` on corrupted copies of a generated bag.

For each storage (MCAP, sqlite3) and each kind of damage -- ``flip`` (8 random
bytes inverted), ``truncate`` (file cut at a random point) and ``zero`` (a 4 KiB
block zeroed) -- N copies of one ``make-bag`` recording are damaged at random
offsets (seeded) and evaluated through the real command line in this process.

Printed per storage and kind: cases; clean exits (0 or 2 with at most one
``error:`` line on stderr); reports written; frames scored against frames
before the damage (the pairs a reader can get from the same file cut at the
first damaged byte: the best any reader can do); cases scoring at least that;
tracebacks (an exception escaping the CLI; must be 0).

Run: ``python benchmarks/bench_faults.py [--cases 25] [--frames 40] [--model M]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from dice_seg_ros.bags.bag_io import BadMessage, BagReader, StorageFault
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.cli import main as cli_main
from dice_seg_ros.runtime.pairing import header_stamp_ns

KINDS = ("flip", "truncate", "zero")
STORAGES = ("mcap", "sqlite3")
ZERO_BLOCK = 4096
FLIPPED_BYTES = 8
HEADER_BYTES = 64  # damage after the file magic / sqlite header start


@dataclass
class Case:
    """Outcome of one damaged bag."""

    exit_code: int | None
    clean: bool
    report: bool
    scored: int
    before_damage: int
    traceback: bool


def storage_file(bag: Path) -> Path:
    """Return the single .mcap/.db3 file of a bag directory."""
    (path,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return path


def damage(path: Path, kind: str, rng: random.Random) -> int:
    """Damage ``path`` in place; return the offset (bytes) of the first damaged byte."""
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        offset = rng.randrange(HEADER_BYTES, len(data))
        path.write_bytes(bytes(data[:offset]))
        return offset
    if kind == "zero":
        offset = rng.randrange(HEADER_BYTES, len(data) - ZERO_BLOCK)
        data[offset:offset + ZERO_BLOCK] = bytes(ZERO_BLOCK)
    else:
        offsets = sorted(rng.sample(range(HEADER_BYTES, len(data)), FLIPPED_BYTES))
        for at in offsets:
            data[at] ^= 0xFF
        offset = offsets[0]
    path.write_bytes(bytes(data))
    return offset


def pairs_readable(bag: Path) -> int:
    """Count stamps with both a readable image and label in ``bag`` (0 if it won't open)."""
    stamps: dict[str, set[int]] = {IMAGE_TOPIC: set(), LABEL_TOPIC: set()}
    try:
        with BagReader(bag) as reader:
            for message in reader.messages([IMAGE_TOPIC, LABEL_TOPIC]):
                if not isinstance(message, BadMessage):
                    stamps[message.topic].add(header_stamp_ns(message.msg.header))
    except StorageFault:
        pass
    except Exception:  # noqa: BLE001 - an unopenable prefix holds no frames
        return 0
    return len(stamps[IMAGE_TOPIC] & stamps[LABEL_TOPIC])


def frames_before(clean_bag: Path, offset: int, work: Path) -> int:
    """Pairs readable from ``clean_bag`` cut at ``offset`` bytes."""
    cut = work / "cut"
    shutil.copytree(clean_bag, cut)
    target = storage_file(cut)
    target.write_bytes(target.read_bytes()[:offset])
    try:
        return pairs_readable(cut)
    finally:
        shutil.rmtree(cut)


def run_case(clean_bag: Path, kind: str, rng: random.Random, work: Path,
             model: Path | None) -> Case:
    """Damage a copy of ``clean_bag``, evaluate it through the CLI, and judge the outcome."""
    bag = work / "bag"
    out = work / "out"
    shutil.copytree(clean_bag, bag)
    offset = damage(storage_file(bag), kind, rng)
    before = frames_before(clean_bag, offset, work)
    args = ["eval", "--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--label-topic",
            LABEL_TOPIC, "--out", str(out), "--no-output-bag", "--no-progress"]
    args += ["--model", str(model)] if model else []
    stdout, stderr = io.StringIO(), io.StringIO()
    code, escaped = None, False
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli_main(args)
        except Exception:  # noqa: BLE001 - counting exactly these is the point
            escaped = True
            traceback.print_exc()
    err = stderr.getvalue()
    report_path = out / "report.json"
    report = report_path.is_file()
    scored = json.loads(report_path.read_text())["frames"] if report else 0
    clean = (not escaped and code in (0, 2) and "Traceback" not in err
             and err.count("error:") <= 1)
    shutil.rmtree(bag)
    shutil.rmtree(out, ignore_errors=True)
    return Case(code, clean, report, scored, before, escaped or "Traceback" in err)


def run(cases: int, frames: int, seed: int, model: Path | None,
        storages: tuple[str, ...] = STORAGES,
        kinds: tuple[str, ...] = KINDS) -> dict[tuple[str, str], list[Case]]:
    """Run every (storage, kind) ``cases`` times; return the outcomes."""
    results: dict[tuple[str, str], list[Case]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_faults_") as tmp:
        work = Path(tmp)
        for storage in storages:
            clean = write_synthetic_bag(work / f"clean_{storage}", frames, 64, 48,
                                        storage=storage, progress=False)
            for kind in kinds:
                rng = random.Random(f"{seed}-{storage}-{kind}")
                results[storage, kind] = [run_case(clean, kind, rng, work, model)
                                          for _ in range(cases)]
    return results


def table(results: dict[tuple[str, str], list[Case]]) -> str:
    """Format the outcomes as a Markdown table."""
    lines = ["| storage | damage | cases | clean exits | reports | frames scored / before "
             "damage | cases >= before | tracebacks |",
             "|---|---|---|---|---|---|---|---|"]
    for (storage, kind), outcome in results.items():
        lines.append(
            f"| {storage} | {kind} | {len(outcome)} | {sum(c.clean for c in outcome)} | "
            f"{sum(c.report for c in outcome)} | {sum(c.scored for c in outcome)} / "
            f"{sum(c.before_damage for c in outcome)} | "
            f"{sum(c.scored >= c.before_damage for c in outcome)} | "
            f"{sum(c.traceback for c in outcome)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[tuple[str, str], list[Case]]:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=25, help="bags per storage and kind")
    parser.add_argument("--frames", type=int, default=40, help="frames per generated bag")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=None,
                        help="model for eval (default: the shipped one)")
    args = parser.parse_args(argv)
    results = run(args.cases, args.frames, args.seed, args.model)
    print(table(results))
    return results


if __name__ == "__main__":
    main()
