"""Synthesize: SFT examples written by an LLM teacher for records whose tasks have no target in the data.

    teacher.py               the stage: eligible records -> requests -> a backend -> validated examples
    transformers_backend.py  backend `transformers`: a Ray Data actor pool (CPU or GPU)
    vllm_backend.py          backend `vllm`: Ray Data's LLM processor (vLLM engines on GPUs)
    cache.py                 the request cache under `<output>/_cache/teacher/`, shared by both backends
    parse.py                 parse and validate one output: its fields, or why it is invalid

Its schemas (requests, generated rows, examples, cache) are in sft_ray/schema.py.
"""

from sft_ray.synthesize.teacher import teacher_examples

__all__ = ["teacher_examples"]
