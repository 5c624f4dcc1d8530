"""E-invoice bench: CPU per structured invoice at 20 charges, and the PDF/A-3 overhead.

    python bench/einvoice.py              # figures for the issue's targets
    python bench/einvoice.py --runs 2000  # more runs, steadier medians

1. Per format, CPU milliseconds to build the XML from a parsed record (20 charges), with
   and without the per-invoice XML Schema check. Target: <= 3 ms with the check.
2. PDF/A-3 for every invoice: CPU of ``pdfa.conform`` itself plus the extra time
   ``canvas.save()`` takes to write its objects, rendering a 20-CDR invoice with and
   without it (interleaved A/B, medians). Target: <= 0.3 ms. "Without" replaces
   ``pdfa.conform`` by a no-op: the renderer as it was before.

CPU time (``time.process_time``) is reported: it is what a bill run pays and the least
disturbed by other load on a shared machine. Compare within one run, not across runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMATS = ("factur-x", "xrechnung-cii", "xrechnung-ubl", "peppol-bis3", "ro-cius")


def _samples():
    spec = importlib.util.spec_from_file_location("samples_build", ROOT / "samples/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_with_20_charges(fmt: str):
    """The Factur-X business sample cut to its first 20 charges, asking for ``fmt``."""
    from invoicer.billing import parse_record

    b = _samples()
    rec = b.nl_factur_x_business()
    left, services = 20, []
    for service in rec["services"]:
        if left:
            services.append({**service, "charges": service["charges"][:left]})
            left -= len(services[-1]["charges"])
    rec["services"] = services
    assert sum(len(s["charges"]) for s in rec["services"]) == 20
    rec["operator"]["endpoint"] = {"scheme": "EM", "id": "facturen@poldertelecom.example"}
    rec["delivery"]["einvoice"] = {
        "format": fmt, "buyer_reference": "04011000-12345-03",
        "endpoint": {"scheme": "EM", "id": "inkoop@goudenkorenaar.example"}}
    b.finish(rec, rates={"BTW": "0.21"}, vat={"BTW": {"category": "S"}},
             payment=b.epc_payment({"IBAN": b.POLDER_IBAN, "BIC": "INGBNL2A",
                                    "beneficiary": "Polder Telecom B.V.",
                                    "remittance_reference": b.epc.make_rf("6690000020")}))
    return parse_record(json.dumps(rec))


def cpu_ms(fn, runs: int) -> float:
    """Median CPU ms of ``fn()`` over ``runs`` calls, in batches of 10."""
    samples = []
    for _ in range(max(1, runs // 10)):
        t = time.process_time()
        for _ in range(10):
            fn()
        samples.append((time.process_time() - t) / 10 * 1000)
    return statistics.median(samples)


def bench_xml(runs: int) -> None:
    from invoicer.renderer.einvoice import build, xsd

    xsd.warm()
    print(f"1. structured invoice at 20 charges, CPU ms (median of {runs} runs)")
    print(f"   {'format':<14} {'build':>7} {'+ XSD check':>12} {'bytes':>7}   target <= 3 ms")
    for fmt in FORMATS:
        record = record_with_20_charges(fmt)
        size = len(build(record).xml)
        bare = cpu_ms(lambda r=record: build(r, verify=False), runs)
        full = cpu_ms(lambda r=record: build(r), runs)
        print(f"   {fmt:<14} {bare:7.3f} {full:12.3f} {size:7d}")


def bench_pdfa(runs: int) -> None:
    from reportlab.pdfgen.canvas import Canvas

    from invoicer.billing import parse_record
    from invoicer.renderer import pdfa, render

    sys.path.insert(0, str(ROOT / "bench"))
    from render import record_json

    record = parse_record(record_json(20))
    real_conform, real_save = pdfa.conform, Canvas.save
    spent: list[float] = []
    saves: dict[bool, list[float]] = {True: [], False: []}
    renders: dict[bool, list[float]] = {True: [], False: []}
    mode = [True]

    def timed_conform(*args, **kwargs):
        t = time.process_time()
        real_conform(*args, **kwargs)
        spent.append(time.process_time() - t)

    def no_conform(*args, **kwargs):
        return None

    def timed_save(self):
        # The extra objects are written out here: part of the PDF/A cost.
        t = time.process_time()
        real_save(self)
        saves[mode[0]].append(time.process_time() - t)

    render(record)  # fonts registered, ICC read once: not part of the per-invoice cost
    Canvas.save = timed_save
    try:
        for i in range(max(40, runs // 5)):
            mode[0] = i % 2 == 0  # interleaved A/B: both see the same machine load
            pdfa.conform = timed_conform if mode[0] else no_conform
            t = time.process_time()
            render(record)
            renders[mode[0]].append(time.process_time() - t)
        pdfa.conform = no_conform
        plain_size = len(render(record))
    finally:
        pdfa.conform, Canvas.save = real_conform, real_save
    size = len(render(record))

    def med(values):
        return statistics.median(values) * 1000

    conform, save_delta = med(spent), med(saves[True]) - med(saves[False])
    n = len(renders[True])
    print(f"\n2. PDF/A-3b for every invoice (20 CDRs, {n} renders each way, interleaved)")
    print(f"   pdfa.conform:                       {conform:.3f} ms CPU")
    print(f"   writing its objects (save delta):   {save_delta:+.3f} ms CPU")
    print(f"   PDF/A cost per invoice:             {conform + save_delta:.3f} ms CPU"
          "   target <= 0.3 ms")
    print(f"   whole render without / with PDF/A:  {med(renders[False]):.2f} / "
          f"{med(renders[True]):.2f} ms CPU (context: the difference is within its noise)")
    print(f"   bytes: {plain_size} -> {size} (+{size - plain_size}: ICC profile, XMP, "
          "output intent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    bench_xml(args.runs)
    bench_pdfa(args.runs)


if __name__ == "__main__":
    main()
