"""Ray job: corpora -> SFT dataset -> fine-tuned model, both in one Ray job.

    python jobs/pipeline.py [--config jobs/configs/demo.yaml] [--set key=value ...]
    ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/pipeline.py --config ...

With no --config it runs the embedded demo. Under `ray job submit` it joins the cluster (RAY_ADDRESS);
otherwise it starts Ray locally. The spine itself lives in sft_ray/ (build.py, train/) so the
`sft-ray run` console script runs exactly the same code.
"""

import sys
from pathlib import Path

# Under `ray job submit --working-dir .` the uploaded tree is the working directory: import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sft_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
