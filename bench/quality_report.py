"""The quality table of docs/quality.md, from what bench/quality.sh left in runs/quality/.

    python3 bench/quality_report.py [--runs runs/quality] [--grids docs/quality]

Prints one Markdown row per family that has a scored run (genc.json): its budget, the genc
training's wall time, the spec's own evals on the test set, the sample metrics of genc's
classifier, and the PyTorch peer's figures where there is one. With --grids, copies each
family's grid.png to DIR/FAMILY.png for the docs. Standard library only.
"""

import argparse
import json
import os
import shutil


def load(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def budgets(script):
    """family -> (spec, settings) from the BUDGET table of bench/quality.sh."""
    out = {}
    with open(script) as f:
        text = f.read()
    block = text.split("BUDGET=$(", 1)[1].split("EOF\n)", 1)[0]
    for line in block.splitlines():
        parts = line.split("|")
        if len(parts) == 6:
            out[parts[0]] = (parts[1], parts[2])
    return out


def sample_cells(report):
    if not report or "frechet_distance" not in report:
        return "-", "-", "-", "-"
    return (
        f"{report['frechet_distance']:.1f}",
        f"{report['kid']:.3f} ± {report['kid_std']:.3f}",
        f"{report['classifier_score']:.2f}",
        f"{report['modes_covered']}/10",
    )


def evals_cell(report):
    if not report or not report.get("evals"):
        return "-"
    return "; ".join(f"{e['name']} {e['value']:.6g}" for e in report["evals"])


def peer_cell(peer, peer_eval):
    if not peer:
        return "-"
    cells = []
    if peer_eval and "frechet_distance" in peer_eval:
        fd, kid, score, modes = sample_cells(peer_eval)
        cells.append(f"FD {fd}, KID {kid}, score {score}, {modes}")
    if "test_neg_elbo" in peer:
        cells.append(f"test -ELBO {peer['test_neg_elbo']:.2f}")
    cells.append(f"{peer['steps']} steps in {peer['seconds']:.0f} s")
    return "; ".join(cells)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/quality")
    p.add_argument("--grids", default=None, help="copy each grid.png to DIR/FAMILY.png")
    args = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    table = budgets(os.path.join(root, "bench", "quality.sh"))
    print(
        "| family | budget | genc wall time | the spec's test evals | FD (FID formula) | KID | "
        "classifier score | classes | PyTorch peer (same metric) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    folders = sorted(os.listdir(args.runs)) if os.path.isdir(args.runs) else []
    for family in table:
        for folder in [f for f in folders if f == family or f.startswith(family + "-seed")]:
            d = os.path.join(args.runs, folder)
            report = load(os.path.join(d, "genc.json"))
            if report is None:
                continue
            spec, settings = table[family]
            if folder != family:
                settings += f" seed={folder.split('-seed')[1]}"
            try:
                with open(os.path.join(d, "time.txt")) as f:
                    seconds = f.readline().strip()
            except OSError:
                seconds = "-"
            fd, kid, score, modes = sample_cells(report)
            peer = peer_cell(load(os.path.join(d, "peer.json")), load(os.path.join(d, "peer-eval.json")))
            step = report.get("step", "-")
            print(
                f"| {family} | `{spec}` {settings} ({step} steps) | {seconds} | {evals_cell(report)} | "
                f"{fd} | {kid} | {score} | {modes} | {peer} |"
            )
            grid = os.path.join(d, "grid.png")
            if args.grids and folder == family and os.path.exists(grid):
                os.makedirs(args.grids, exist_ok=True)
                shutil.copyfile(grid, os.path.join(args.grids, f"{family}.png"))


if __name__ == "__main__":
    main()
