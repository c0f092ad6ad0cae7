# Copyright: mip.federation contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Generate a pathology folder for the compile benchmark.

Writes <folder>/CDEsMetadata.json and <folder>/bench.csv with ROWS rows shaped
like the MIP's dementia data: a subject code, three categorical text
variables (dataset among them), two ranged integers, a ranged real, eight
unranged reals (brain volumes) and about 5 % empty cells. Deterministic
(fixed seed), so every run compiles the same bytes.

    python3 gen.py FOLDER ROWS
"""

import json
import os
import random
import sys

DATASETS = ["adni", "edsd", "ppmi"]
GENDERS = ["F", "M"]
AGEGROUPS = ["-50y", "50-59y", "60-69y", "70-79y", "+80y"]
VOLUMES = ["leftamygdala", "rightamygdala", "lefthippocampus", "righthippocampus",
           "leftthalamusproper", "rightthalamusproper", "csfglobal", "brainstem"]


def cdes():
    def var(code, sql_type, categorical=False, enums=None, low=None, high=None):
        entry = {"code": code, "label": code.title(), "sql_type": sql_type, "isCategorical": categorical,
                 "type": "nominal" if categorical else ("integer" if sql_type == "int" else sql_type)}
        if enums is not None:
            entry["enumerations"] = [{"code": e, "label": e.upper()} for e in enums]
        if low is not None:
            entry["minValue"] = low
            entry["maxValue"] = high
        return entry

    return {
        "code": "bench",
        "label": "Benchmark",
        "version": "1",
        "variables": [var("dataset", "text", True, DATASETS)],
        "groups": [
            {"code": "demographics", "label": "Demographics", "variables": [
                var("subjectcode", "text"),
                var("gender", "text", True, GENDERS),
                var("agegroup", "text", True, AGEGROUPS),
                var("subjectage", "real", low=0, high=130),
            ]},
            {"code": "scores", "label": "Scores", "variables": [
                var("minimentalstate", "int", low=0, high=30),
                var("apoe4", "int", low=0, high=2),
            ]},
            {"code": "brain", "label": "Brain anatomy", "variables": [var(v, "real") for v in VOLUMES]},
        ],
    }


HEADER = ["subjectcode", "dataset", "gender", "agegroup", "subjectage", "minimentalstate", "apoe4"] + VOLUMES


def rows(count, seed=7):
    rnd = random.Random(seed)
    pick = rnd.choice
    for index in range(count):
        empty = rnd.random() < 0.05
        yield [
            "s%07d" % index,
            pick(DATASETS),
            pick(GENDERS),
            pick(AGEGROUPS),
            "%.4f" % rnd.uniform(40, 95),
            "" if empty else str(rnd.randint(0, 30)),
            str(rnd.randint(0, 2)),
        ] + ["" if (empty and i % 3 == 0) else "%.6f" % rnd.uniform(0.2, 9.0) for i in range(len(VOLUMES))]


def generate(folder, count):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "CDEsMetadata.json"), "w", encoding="utf-8") as handle:
        json.dump(cdes(), handle, indent=2)
        handle.write("\n")
    path = os.path.join(folder, "bench.csv")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(HEADER) + "\n")
        for row in rows(count):
            handle.write(",".join(row) + "\n")
    return path


if __name__ == "__main__":
    generate(sys.argv[1], int(sys.argv[2]))
