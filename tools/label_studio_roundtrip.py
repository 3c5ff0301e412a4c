"""Round trip through a real Label Studio server with label-studio-sdk: a project from
RUN/labels/studio/config.xml, tasks.json imported (the model's predictions pre-filled), one
annotation per answered task submitted through the API, then the project exported as JSON and
JSON-MIN into OUT_DIR (export_json.json, export_json_min.json) for `sft-ray label import`.

Runs with the Label Studio virtual environment's python (`./dev setup` does not make it; `./dev
test` does, as .venv-labelstudio/), which has the SDK but not sft_ray, so this file imports only
the SDK and the standard library. tests/label/test_label_studio_server.py drives it; by hand:

    LABEL_STUDIO_USERNAME=me@example.org LABEL_STUDIO_PASSWORD=... LABEL_STUDIO_USER_TOKEN=<40 hex> \
      LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
      .venv-labelstudio/bin/label-studio start --no-browser --internal-host 127.0.0.1 -p 8089 --data-dir /tmp/lsdata &
    sft-ray label export RUN
    .venv-labelstudio/bin/python tools/label_studio_roundtrip.py http://127.0.0.1:8089 <token> RUN answers.json OUT_DIR
    sft-ray label import RUN OUT_DIR/export_json.json

answers.json is {record id: class name}; tasks whose record id it lacks stay unannotated. Prints
one JSON line: project id, tasks imported, predictions imported, annotations submitted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk.client import LabelStudio


def main(base: str, token: str, run: str, answers_path: str, out_dir: str) -> dict:
    studio = Path(run) / "labels" / "studio"
    config = (studio / "config.xml").read_text(encoding="utf-8")
    tasks = json.loads((studio / "tasks.json").read_text(encoding="utf-8"))
    answers = json.loads(Path(answers_path).read_text(encoding="utf-8"))
    # The labeler's control name: every prediction result names it (sft_ray/label/studio.py).
    control = tasks[0]["predictions"][0]["result"][0]["from_name"]
    to_name = tasks[0]["predictions"][0]["result"][0]["to_name"]

    ls = LabelStudio(base_url=base, api_key=token, timeout=120)
    project = ls.projects.create(title="sft_ray round trip", label_config=config)
    imported = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
    submitted = 0
    for task in ls.tasks.list(project=project.id, page_size=100):
        label = answers.get(task.data["record_id"])
        if label is None:
            continue
        ls.annotations.create(id=task.id, result=[{"from_name": control, "to_name": to_name, "type": "choices",
                                                   "value": {"choices": [label]}}], ground_truth=False)
        submitted += 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for kind in ("JSON", "JSON_MIN"):
        data = b"".join(ls.projects.exports.download_sync(id=project.id, export_type=kind, download_all_tasks=True))
        (out / f"export_{kind.lower()}.json").write_bytes(data)
    return {"project": project.id, "tasks": imported.task_count, "predictions": imported.prediction_count,
            "annotations": submitted}


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    print(json.dumps(main(*sys.argv[1:6])))
