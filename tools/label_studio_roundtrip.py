"""Round trip through a real Label Studio server: project from RUN/labels/studio/config.xml, import
tasks.json (predictions pre-filled), annotate every task through the REST API with a gold label,
export JSON, and read it with sft_ray.label.studio.parse_export. How tests/data/label_studio/ was made.

    pip install --target /tmp/ls label-studio        # ~1 GB; the server is a Django app
    PYTHONPATH=/tmp/ls LABEL_STUDIO_USERNAME=me@example.org LABEL_STUDIO_PASSWORD=... \
      LABEL_STUDIO_USER_TOKEN=<token> LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
      python -m label_studio.server start --no-browser -p 8089 --data-dir /tmp/lsdata &
    sft-ray label export RUN
    python tools/label_studio_roundtrip.py http://localhost:8089 <token> RUN gold.json   # gold.json: {record id: label}
"""

from __future__ import annotations

import json
import sys
import urllib.request

from sft_ray.label.studio import parse_export


def call(base: str, token: str, method: str, path: str, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def main(base: str, token: str, run: str, gold_path: str) -> None:
    config = open(f"{run}/labels/studio/config.xml", encoding="utf-8").read()
    tasks = json.load(open(f"{run}/labels/studio/tasks.json", encoding="utf-8"))
    gold = json.load(open(gold_path, encoding="utf-8"))
    project = call(base, token, "POST", "/api/projects", {"title": "sft_ray topic", "label_config": config})
    print("import:", call(base, token, "POST", f"/api/projects/{project['id']}/import", tasks))
    listed = call(base, token, "GET", f"/api/tasks?project={project['id']}&page_size=1000")
    listed = listed["tasks"] if isinstance(listed, dict) else listed
    for t in listed:
        call(base, token, "POST", f"/api/tasks/{t['id']}/annotations", {"ground_truth": False, "result": [
            {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [gold[t["data"]["record_id"]]]}}]})
    for kind in ("JSON", "JSON_MIN"):
        export = call(base, token, "GET", f"/api/projects/{project['id']}/export?exportType={kind}")
        json.dump(export, open(f"{run}/labels/studio/export_{kind.lower()}.json", "w", encoding="utf-8"), ensure_ascii=False)
        rows, unlabelled = parse_export(export, "topic", sorted(set(gold.values())), where=kind)
        print(f"{kind}: {len(rows)} labels read back, {unlabelled} without annotation, all equal to gold: "
              f"{all(r['label'] == gold[r['id']] for r in rows)}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
