# Sourced by the translation training queues as `source .../common.sh "$@"`: goes to the repository root,
# sets runs=${1:-runs/translate} and py=${PYTHON:-.venv/bin/python}, and defines
# train DATA MODE ITERATIONS [KEY=VALUE ...], which
#   writes $runs/<name>/ (checkpoint, losses, samples, weights + card) and $runs/<name>.log, one thread;
#   <name> = translate_<data>_<mode>[<name_suffix>][_ac]. A run whose weights exist is skipped; an interrupted run resumes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/translate}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"

train() {
  local data=$1 mode=$2 its=$3; shift 3
  local name="translate_${data}_${mode}${name_suffix:-}"
  for o in "$@"; do [ "$o" = "auto_context=true" ] && name="${name}_ac"; done
  if [ -f "$runs/$name/$name.safetensors" ]; then echo "skip $name (weights exist)"; return; fi
  echo "$(date -u +%H:%M:%S) start $name"
  "$py" -m synthaug.cli.main train translate --mode "$mode" --quiet --out "$runs/$name" \
    --set name="$name" data="$data" iterations="$its" threads=1 "$@" > "$runs/$name.log" 2>&1
  echo "$(date -u +%H:%M:%S) done $name"
}
