#!/bin/bash
# Times full data preparation of two checkouts side by side (interleaved, --rebuild, separate caches).
#
#   bash scripts/time_data_preparation.sh OLD_CHECKOUT NEW_CHECKOUT OUT_DIR [ROUNDS]
#
# Runs `./run.sh python -m train.prepare_data --config=configs/sent140.py --rebuild` in each
# checkout, alternating old/new ROUNDS times (default 2), each with its own cache under OUT_DIR
# (the raw files come from the default data folder). OUT_DIR gets each run's report
# (report_<which>_<round>.json: wall, CPU, peak RSS, build timings) and its log. Run it on an
# otherwise idle machine; then check that both caches hold the same token ids with
# scripts/compare_prepared_data.py OUT_DIR/cache_old OUT_DIR/cache_new.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_CHECKOUT NEW_CHECKOUT OUT_DIR [ROUNDS]" >&2; exit 2; }
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); out=$(mkdir -p "$3" && cd "$3" && pwd); rounds=${4:-2}
for round in $(seq 1 "$rounds"); do
  for which in old new; do
    if [ "$which" = old ]; then dir=$old; else dir=$new; fi
    echo "== round $round $which ($(git -C "$dir" rev-parse --short HEAD)) $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd "$dir" && MAMBA_JAX_DATA_CACHE="$out/cache_$which" ./run.sh python -m train.prepare_data \
      --config=configs/sent140.py --rebuild --report="$out/report_${which}_$round.json") > "$out/${which}_$round.log" 2>&1
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], 'wall', r['wall_time_s'], 's, cpu', r['cpu_time_s'], 's, peak rss', r['peak_rss_mib'], 'MiB')" \
      "$out/report_${which}_$round.json" "$which"
  done
done
