"""The content hash against the contract's formula, by record size: CPU ms per record.

    python bench/content_hash.py [--records 10] [--rounds 3]

Records of ``bench/run.py``'s three sizes (20, 800 and 3,500 calls; generated, parsed
outside the timer). For each size, in turn: ``billing.content_sha256`` (the call-detail
rows written straight from the ``Usage`` objects) and the formula contract 1.1 fixed,
as it was computed before (pydantic's dump of the whole record, then ``json``'s encoder
with sorted keys), the best of ``--rounds`` with ``time.process_time``. Both give the
same hash (checked here for every record, and in the tests with hypothesis).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from invoicer.billing import parse_record
    from invoicer.billing.content import _ENCODER, EXCLUDED, content_sha256
    from invoicer.billing.synthetic import generate

    def formula(record) -> str:
        dumped = record.model_dump(mode="python", by_alias=True, exclude=set(EXCLUDED))
        return hashlib.sha256(_ENCODER.encode(dumped).encode("utf-8")).hexdigest()

    print(f"CPU ms per record, best of {args.rounds} rounds of {args.records} records")
    print(f"{'calls':>6} {'content_sha256':>15} {'the formula':>12} {'ratio':>6}")
    for calls, seed in ((20, 11), (800, 12), (3500, 13)):
        records = [parse_record(json.dumps(r).encode())
                   for r in generate(args.records, calls, seed)]
        assert all(content_sha256(r) == formula(r) for r in records)
        best = {}
        for name, fn in (("fast", content_sha256), ("formula", formula)):
            times = []
            for _ in range(args.rounds):
                start = time.process_time()
                for record in records:
                    fn(record)
                times.append((time.process_time() - start) * 1000 / len(records))
            best[name] = min(times)
        print(f"{calls:>6} {best['fast']:>15.3f} {best['formula']:>12.3f} "
              f"{best['formula'] / best['fast']:>5.1f}x")


if __name__ == "__main__":
    main()
