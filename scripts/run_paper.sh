#!/usr/bin/env bash
# Compute every paper-scale cell into the results store, most informative first. Resumable: run it
# again after any interruption and it skips what is stored. On a GPU machine: DEVICE=cuda.
#
#   LINATTN_DATA=/path/to/data scripts/run_paper.sh               # CPU, torch's threads
#   DEVICE=cuda scripts/run_paper.sh                               # one GPU
#   THREADS=1 WORKERS=2 scripts/run_paper.sh                       # two worker processes
#   ONLY="malleability_tables task_kappa" scripts/run_paper.sh     # a subset, in this order
#   ONLY="malleability_tables:tasks=mnist;input_map=center" ...    # NAME:KEY=VALUE;KEY=VALUE sets config keys
#
# Then commit results/ (the cells carry their provenance) and `linattn results verify`.
set -euo pipefail
cd "$(dirname "$0")/.."
LINATTN=${LINATTN:-.venv/bin/linattn}
DEVICE=${DEVICE:-cpu}
WORKERS=${WORKERS:-1}
THREADS_ARG=${THREADS:+--threads $THREADS}
ORDER=${ONLY:-"task_kappa kappa_vs_n premise kappa_full width_facts
malleability_tables:tasks=mnist malleability_curves:widths=1024
malleability_tables:tasks=mnist;kernel=infinite malleability_tables:tasks=mnist;epochs=0
adversarial_tables:tasks=mnist malleability_tables:tasks=mnist_3v8
width_sweep:tasks=mnist;n_train=2000;seeds=0
malleability_tables:tasks=mnist;input_map=center malleability_tables:tasks=mnist;init_scale=0.01
malleability_tables:tasks=mnist;weight_decay=0
width_sweep:tasks=mnist;n_train=2000;seeds=0;input_map=center
dual_implication:n_train=200 dual_implication:n_train=500 dual_implication:n_train=1000 dual_implication
lazy_control:tasks=mnist_3v8 malleability_tables:tasks=cifar10;input_map=center
malleability_tables:tasks=cifar_car_plane;input_map=center width_sweep:tasks=mnist;n_train=2000;input_map=center
adversarial_tables:tasks=mnist;at_steps=7;at_step_size=0.1
adversarial_tables:tasks=mnist;at_steps=7;at_step_size=0.1;at_epochs=20
adversarial_tables:tasks=cifar10;at_steps=7;at_step_size=0.1
adversarial_tables:tasks=mnist;input_map=center malleability_curves width_sweep:tasks=mnist;n_train=2000 malleability_tables adversarial_tables lazy_control
width_sweep:tasks=mnist width_sweep"}
for item in $ORDER; do
  name=${item%%:*}
  sets=()
  if [[ $item == *:* ]]; then
    IFS=';' read -ra pairs <<< "${item#*:}"
    for kv in "${pairs[@]}"; do sets+=(--set "$kv"); done
  fi
  echo "== $name ${sets[*]:-} ($(date -u +%H:%M:%S))"
  "$LINATTN" reproduce "$name" --scale paper "${sets[@]}" --device "$DEVICE" --workers "$WORKERS" $THREADS_ARG --no-progress
done
"$LINATTN" results verify
