"""E-invoice bench: CPU per structured invoice at 20 charges, and the PDF/A-3 overhead.

    python bench/einvoice.py              # figures for the issue's targets
    python bench/einvoice.py --runs 2000  # more runs, steadier medians

1. Per format, CPU milliseconds to build the XML from a parsed record (20 charges), with
   and without the per-invoice XML Schema check. Target: <= 3 ms with the check.
2. PDF/A-3 for every invoice: CPU of ``pdfa.conform`` itself, and the render of a
   20-CDR invoice with and without it (interleaved A/B, medians). Target: <= 0.3 ms.
   "Without" replaces ``pdfa.conform`` by a no-op: the renderer as it was before.

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
    from invoicer.billing import parse_record
    from invoicer.renderer import pdfa, render

    sys.path.insert(0, str(ROOT / "bench"))
    from render import record_json

    record = parse_record(record_json(20))
    real = pdfa.conform
    spent: list[float] = []

    def timed(*args, **kwargs):
        t = time.process_time()
        real(*args, **kwargs)
        spent.append(time.process_time() - t)

    def without(*args, **kwargs):
        return None

    render(record)  # fonts registered, ICC read once: not part of the per-invoice cost
    renders = max(20, runs // 10)
    on, off = [], []
    for i in range(renders * 2):
        pdfa.conform = timed if i % 2 == 0 else without
        t = time.process_time()
        pdf = render(record)
        (on if i % 2 == 0 else off).append((time.process_time() - t) * 1000)
    pdfa.conform = without
    plain_size = len(render(record))
    pdfa.conform = real
    pdf = render(record)
    conform = statistics.median(spent) * 1000
    print(f"\n2. PDF/A-3b for every invoice (20 CDRs, median of {renders} renders each)")
    print(f"   pdfa.conform itself:        {conform:.3f} ms CPU        target <= 0.3 ms")
    print(f"   render without PDF/A:       {statistics.median(off):.3f} ms CPU")
    print(f"   render with PDF/A:          {statistics.median(on):.3f} ms CPU "
          f"(difference {statistics.median(on) - statistics.median(off):+.3f} ms, "
          f"noise of the order of 0.1 ms)")
    print(f"   bytes: {plain_size} -> {len(pdf)} (+{len(pdf) - plain_size}: ICC profile, "
          "XMP, output intent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    bench_xml(args.runs)
    bench_pdfa(args.runs)


if __name__ == "__main__":
    main()
