"""Fuzzes every serving signature of tiny exports with hypothesis-generated requests.

Each family is a tiny untrained run exported by `kzoo export` into a temporary
directory (without assets.extra, which holds no signature); each signature gets
`--cases` requests: any text and bytes (invalid UTF-8, NUL), 0 to 3 rows, inputs
of rank 0 to 2, options inside and outside their ranges. A case passes when the signature answers as
kzoo/export/input_policy.py says: finite, well-typed outputs with one row per input
row, or an InvalidArgumentError naming an input the policy rejects. Anything else
(another exception, a NaN, a wrong row count, a rejected valid request) is a
failure; a call that runs longer than `--call-timeout` seconds (a hang) aborts the
process with its traceback. A valid request warms each signature up first, so
ms/case leaves out the first call's graph optimization. `serving_default` is the
same function as the first signature and is not fuzzed again.

    python benchmarks/fuzz_serving.py --cases 1000
    python benchmarks/fuzz_serving.py --cases 200 --families gpt bert_qa

Prints a markdown table (one row per signature) for BENCHMARKS.md; exits 1 on any
failure. Needs the test extras (pytest, hypothesis): the tiny runs and the request
generator are those of kzoo/testing/serving_fuzz.py.
"""

import argparse
import faulthandler
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FAMILIES = (
    "gpt",
    "llama",
    "lstm",
    "seq2seq",
    "t5",
    "bert_classify",
    "bert_tag",
    "bert_qa",
    "bert_pretrain",
)


def fuzz_signature(export, name, cases, seed, call_timeout):
    """Runs at least `cases` hypothesis-generated requests (hypothesis may stop a
    run early: it is run again, seed + 1, until enough ran); returns counts,
    failures and seconds."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from kzoo.testing.serving_fuzz import call_signature, draw_request, fuzz_once, valid_request

    counts = {"ok": 0, "invalid": 0, "failed": 0}
    failures = []
    call_signature(export, name, valid_request(export, name))

    def one_case(data):
        inputs = draw_request(data.draw, export, name)
        faulthandler.dump_traceback_later(call_timeout, exit=True)
        try:
            counts[fuzz_once(export, name, inputs)] += 1
        except Exception as error:  # Every other outcome is a failure to report.
            counts["failed"] += 1
            failures.append(f"{type(error).__name__}: {str(error)[:300]} <- {_short(inputs)}")
        finally:
            faulthandler.cancel_dump_traceback_later()

    start = time.monotonic()
    while sum(counts.values()) < cases:
        remaining = cases - sum(counts.values())
        run = given(data=st.data())(one_case)
        run = settings(
            max_examples=remaining,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(run)
        hypothesis_seed(seed)(run)()
        seed += 1
    return counts, failures, time.monotonic() - start


def _short(inputs):
    return {
        k: (v[:3] if isinstance(v, list) else v)
        for k, v in inputs.items()
        if not k.endswith("_width")
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="requests per signature")
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(DEFAULT_FAMILIES),
        choices=DEFAULT_FAMILIES + ("bert", "bert_pairs"),
        help="tiny exports to fuzz (bert, bert_pairs: every BERT "
        "signature, or classify and answer, in one SavedModel)",
    )
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=120.0,
        help="seconds before a single call counts as a hang",
    )
    parser.add_argument(
        "--out", default=None, help="where to export (default: a temporary directory, removed)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    out = args.out or tempfile.mkdtemp(prefix="fuzz_serving_")
    try:
        _, failures = fuzz_families(args, out)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 1 if failures else 0


def fuzz_families(args, out):
    """Exports and fuzzes each family; prints the table; returns rows and failures."""
    from kzoo.testing.serving_fuzz import TinyExport
    from kzoo.testing.tiny_runs import build_export

    rows, all_failures = [], []
    started = time.monotonic()
    for family in args.families:
        directory = os.path.join(out, family)
        os.makedirs(directory, exist_ok=True)
        export_start = time.monotonic()
        export = TinyExport.load(family, build_export(directory, family, assets=False))
        print(
            f"{family}: exported in {time.monotonic() - export_start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        for name in sorted(export.signatures):
            if name == "serving_default":
                continue
            counts, failures, seconds = fuzz_signature(
                export, name, args.cases, args.seed, args.call_timeout
            )
            total = sum(counts.values())
            rows.append((family, name, total, counts, seconds))
            all_failures += [f"{family}/{name}: {f}" for f in failures]
            print(f"{family}/{name}: {counts} in {seconds:.0f} s", file=sys.stderr, flush=True)

    print(
        f"\n{args.cases} hypothesis cases requested per signature, seed {args.seed}; "
        f"{time.monotonic() - started:.0f} s in all (exports included)\n"
    )
    print("| export | signature | cases | ok | InvalidArgument | failures | ms/case |")
    print("|---|---|---|---|---|---|---|")
    for family, name, total, counts, seconds in rows:
        print(
            f"| {family} | {name} | {total} | {counts['ok']} | {counts['invalid']} | "
            f"{counts['failed']} | {1000 * seconds / max(total, 1):.0f} |"
        )
    if all_failures:
        print(f"\n{len(all_failures)} failures:")
        for failure in all_failures[:50]:
            print(f"- {failure}")
    return rows, all_failures


if __name__ == "__main__":
    sys.exit(main())
