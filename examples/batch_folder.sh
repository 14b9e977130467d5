#!/usr/bin/env bash
# Stylise every photo in a folder with two prompts, the way you would leave it overnight.
#
#   examples/batch_folder.sh [PHOTO_FOLDER] [OUTPUT_FOLDER]
#
# Rerunning the same command continues where a stopped run ended: finished jobs are skipped.
# Exit code: 0 when every job succeeded, 8 when some failed (listed below and in
# OUTPUT/manifest.jsonl), 130 after Ctrl-C.
#
# The same batch on the 4 GPUs of one machine (each rank takes its share; one manifest):
#   torchrun --standalone --nproc-per-node 4 -m clipstyler_opt batch PHOTOS -p ... -o OUT
# As a SLURM array of 8 independent tasks, without torchrun:
#   clipopt batch PHOTOS -p ... -o OUT --shard "$SLURM_ARRAY_TASK_ID/8"
set -uo pipefail

photos="${1:-$(dirname "$0")}"
out="${2:-out/batch}"

clipopt batch "$photos" --recursive \
    -p "starry night by Vincent van Gogh" \
    -p "ukiyo-e woodblock print" \
    -o "$out" \
    --size 512 --steps 200
status=$?

if [ "$status" -eq 8 ]; then
    echo "failed jobs of this run:" >&2
    python3 - "$out/manifest.jsonl" >&2 <<'PY'
import json
import sys

records = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        records.append(json.loads(line))
    except ValueError:
        pass  # a line cut short by a crash
this_run = records[-1]["run"]
for r in records:
    if r["run"] == this_run and r.get("status") == "failed":
        print(f"  {r['relative']} | {r['prompt']}: {r['error']}")
PY
fi
exit "$status"
