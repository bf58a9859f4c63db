# Shared by the job scripts of PBS (train_gino.pbs, train_gino_mpi.pbs) and Slurm (train_gino.slurm,
# train_gino_mpi.slurm): settings, the walltime limit, the trainer's command, running it with the scheduler's
# signals forwarded, and the self-resubmitting chain. The job scripts source it from $GINO_DIR/hpc/lib.sh; it is
# not run on its own.
# shellcheck shell=bash

# The scheduler running this job (pbs, slurm, or none when the script is run by hand) and the job's id. A PBS
# script (GINO_BATCH=pbs) stays a PBS job on Slurm's Torque layer (slurm-wlm-torque: qsub, qstat and qdel are
# Slurm's), which sets SLURM_JOB_ID and no PBS_JOBID: it chains with qsub and reads its walltime with qstat.
if [ "${GINO_BATCH:-}" = pbs ] && [ -n "${PBS_JOBID:-${SLURM_JOB_ID:-}}" ]; then
  GINO_SCHEDULER=pbs
  GINO_JOB_ID=${PBS_JOBID:-$SLURM_JOB_ID}
elif [ -n "${SLURM_JOB_ID:-}" ]; then
  GINO_SCHEDULER=slurm
  GINO_JOB_ID=$SLURM_JOB_ID
elif [ -n "${PBS_JOBID:-}" ]; then
  GINO_SCHEDULER=pbs
  GINO_JOB_ID=$PBS_JOBID
else
  GINO_SCHEDULER=none
  GINO_JOB_ID=""
fi

# ---- settings common to both scripts (edit them in the job script or pass with qsub -v NAME=value) -------------
gino_defaults() {
  GINO_RUNNER=${GINO_RUNNER:-deno}   # deno: run train.ts with Deno | bundle: dist/gino-train.js | binary: dist/gino-train
  DENO=${DENO:-deno}                 # the deno executable
  DENO_FLAGS=${DENO_FLAGS:-}         # e.g. --cached-only on compute nodes without internet
  TRAIN_ARGS=${TRAIN_ARGS:---epochs 100}
  RESULTS_DIR=${RESULTS_DIR:-results}  # relative to GINO_DIR
  MARGIN_MIN=${MARGIN_MIN:-10}       # stop this many minutes before the walltime
  RESUBMIT=${RESUBMIT:-0}            # 1: resubmit until the run is complete
  MAX_CHAIN=${MAX_CHAIN:-20}         # at most this many jobs in a chain
  CHAIN_INDEX=${CHAIN_INDEX:-0}      # set by the chain itself
  # the chain: its first job's id, and the run its first job trained (its successors resume that run, whatever
  # else appears in the results folder)
  GINO_CHAIN_ID=${GINO_CHAIN_ID:-$GINO_JOB_ID}
  GINO_RUN_NAME=${GINO_RUN_NAME:-}
  # the variables a resubmitted job inherits (a job script adds its own)
  GINO_CHAIN_VARS="GINO_DIR GINO_RUNNER DENO DENO_FLAGS TRAIN_ARGS RESULTS_DIR MARGIN_MIN RESUBMIT MAX_CHAIN \
GINO_PBS_SCRIPT GINO_SLURM_SCRIPT GINO_CHAIN_ID GINO_RUN_NAME MARGIN_SEC ${GINO_CHAIN_VARS:-}"
  case "$RESULTS_DIR" in /*) RESULTS_ABS=$RESULTS_DIR ;; *) RESULTS_ABS=$GINO_DIR/$RESULTS_DIR ;; esac
}

# Enters GINO_DIR and prints where the job runs. The folder the job was submitted from is kept: the chain submits
# the next job from there, so every job's output file lands next to the first one's.
gino_enter() {
  GINO_SUBMIT_DIR=${PBS_O_WORKDIR:-$PWD}
  cd "$GINO_DIR" || { echo "cannot enter GINO_DIR=$GINO_DIR"; exit 2; }
  echo "[$(date -Is)] job ${GINO_JOB_ID:-local} (chain step $CHAIN_INDEX) on $(hostname) in $GINO_DIR"
}

# Seconds of a duration written [D-]HH:MM:SS, HH:MM:SS, MM:SS or SS.
gino_seconds() {
  local t=$1 d=0
  case "$t" in *-*) d=${t%%-*} t=${t#*-} ;; esac
  awk -v d="$d" -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s + d * 86400 }' <<<"$t"
}

# Sets LIMIT_ARGS to --time-limit <walltime - margin>: the walltime from qstat (PBS), the time left from squeue
# (Slurm: [D-]HH:MM:SS or MM:SS), else $WALLTIME (HH:MM:SS).
gino_time_limit() {
  local walltime="" wall_s margin_s limit_s
  if [ "$GINO_SCHEDULER" = pbs ] && command -v qstat >/dev/null 2>&1; then
    walltime=$(qstat -f "$GINO_JOB_ID" 2>/dev/null |
      awk -F= '/Resource_List.walltime/ { gsub(/ /, "", $2); print $2 }')
  elif [ "$GINO_SCHEDULER" = slurm ] && command -v squeue >/dev/null 2>&1; then
    walltime=$(squeue -h -j "$GINO_JOB_ID" -o %L 2>/dev/null | head -n 1)
    case "$walltime" in *[!0-9:-]* | "") walltime="" ;; esac # UNLIMITED, NOT_SET, INVALID
  fi
  [ -z "$walltime" ] && walltime=${WALLTIME:-}
  LIMIT_ARGS=()
  [ -z "$walltime" ] && return 0
  wall_s=$(gino_seconds "$walltime")
  margin_s=${MARGIN_SEC:-$((MARGIN_MIN * 60))}
  limit_s=$((wall_s - margin_s))
  [ "$limit_s" -lt 1 ] && limit_s=$((wall_s / 2))
  LIMIT_ARGS=(--time-limit "${limit_s}s")
  GINO_LIMIT_S=$limit_s
  echo "walltime $walltime: training stops after ${limit_s}s"
}

# Sets TRAINER to the trainer's command and flags (runner, results folder, resume, time limit, TRAIN_ARGS).
gino_trainer() {
  local perms=(--allow-read --allow-write --allow-env --allow-sys --allow-ffi)
  case "$GINO_RUNNER" in
    # shellcheck disable=SC2206
    deno) TRAINER=("$DENO" run $DENO_FLAGS "${perms[@]}" "$GINO_DIR/train.ts") ;;
    # shellcheck disable=SC2206
    bundle) TRAINER=("$DENO" run $DENO_FLAGS "${perms[@]}" "$GINO_DIR/dist/gino-train.js") ;;
    binary) TRAINER=("$GINO_DIR/dist/gino-train") ;;
    *) echo "unknown GINO_RUNNER=$GINO_RUNNER (deno, bundle or binary)"; exit 2 ;;
  esac
  local train_args run=()
  # shellcheck disable=SC2206
  train_args=($TRAIN_ARGS)
  # a chain's later jobs resume the run its first job trained (--run-name with --resume-from auto: that run only)
  if [ -n "$GINO_RUN_NAME" ] && [[ " $TRAIN_ARGS " != *" --run-name "* ]]; then run=(--run-name "$GINO_RUN_NAME"); fi
  TRAINER+=(--results-dir "$RESULTS_DIR" --resume-from auto "${run[@]}" "${LIMIT_ARGS[@]}" "${train_args[@]}")
}

# Remembers a TERM/USR1/INT that comes before the trainer runs (a scheduler's warning signal can come early:
# Slurm's up to a minute before the time asked for); gino_run passes it on. Job scripts call it first.
gino_early_traps() {
  trap 'GINO_EARLY_SIGNAL=TERM' TERM
  trap 'GINO_EARLY_SIGNAL=USR1' USR1
  trap 'GINO_EARLY_SIGNAL=INT' INT
}

# Passes signal $2 on to the trainer (received: $1), no sooner than 3 s after it started: a process cannot catch
# a signal before its runtime has started, and the trainer remembers one from its first moment on.
# A TERM that comes before the trainer's own time limit is not the walltime's: the job was deleted (qdel,
# scancel, qsig -s TERM), and the chain stops after the trainer has saved (gino_chain).
gino_forward() {
  local age=$((SECONDS - GINO_CHILD_STARTED))
  echo "[$(date -Is)] $1 received: asking the trainer to save and stop"
  if [ "$1" = TERM ] && [ -n "${GINO_LIMIT_S:-}" ] && [ "$SECONDS" -lt "$GINO_LIMIT_S" ]; then
    GINO_CANCELLED=$SECONDS
  fi
  [ "$age" -lt 3 ] && sleep $((3 - age))
  kill -"$2" "$GINO_CHILD" 2>/dev/null
}

# Exports what the trainer reports through and records: GINO_GW_STATUS_FILE (its exit status), GINO_GW_RUN_FILE
# (the run it trains), GINO_GW_JOB_ID and GINO_GW_CHAIN_ID (kept in the run's history). A launcher that passes
# only named variables to its ranks (Open MPI's -x) needs them named before gino_run.
gino_job_files() {
  export GINO_GW_STATUS_FILE="$RESULTS_ABS/.exit_status.${GINO_JOB_ID:-$$}"
  export GINO_GW_RUN_FILE="$RESULTS_ABS/.run_name.${GINO_JOB_ID:-$$}"
  export GINO_GW_JOB_ID="$GINO_JOB_ID" GINO_GW_CHAIN_ID="$GINO_CHAIN_ID"
}

# Runs "$@" in the background so that SIGTERM/SIGINT (the walltime warning, qsig) reach it; sets RC to the
# trainer's exit status: the one it wrote to GINO_GW_STATUS_FILE (MPI launchers do not always pass it on), else
# the command's.
gino_run() {
  mkdir -p "$RESULTS_ABS"
  gino_job_files
  rm -f "$GINO_GW_STATUS_FILE" "$GINO_GW_RUN_FILE"
  # the trainer writes its status over this line in place: the file holds its disk space, so the status comes
  # through even when the disk fills during the run
  echo running >"$GINO_GW_STATUS_FILE" 2>/dev/null
  # checkpoints newer than this mark were saved by this job (a killed trainer that saved some is resumable)
  local started="$RESULTS_ABS/.job_start.${GINO_JOB_ID:-$$}"
  touch "$started"
  echo "running: $*"
  "$@" &
  GINO_CHILD=$!
  GINO_CHILD_STARTED=$SECONDS
  local child=$GINO_CHILD
  trap 'gino_forward TERM TERM' TERM
  trap 'gino_forward USR1 TERM' USR1
  trap 'gino_forward INT INT' INT
  # a signal that came before the trainer was started (gino_early_traps) is passed on now
  [ -n "${GINO_EARLY_SIGNAL:-}" ] && gino_forward "$GINO_EARLY_SIGNAL" TERM
  while :; do
    wait "$child"
    RC=$?
    kill -0 "$child" 2>/dev/null || break # a trapped signal interrupted wait: keep waiting for the trainer
  done
  trap - TERM INT USR1
  if [ -s "$GINO_GW_RUN_FILE" ]; then
    GINO_RUN_NAME=$(head -n 1 "$GINO_GW_RUN_FILE")
    echo "run: $RESULTS_DIR/$GINO_RUN_NAME (chain ${GINO_CHAIN_ID:-local})"
  fi
  local reported=""
  [ -s "$GINO_GW_STATUS_FILE" ] && reported=$(tr -dc 0-9 <"$GINO_GW_STATUS_FILE")
  if [ -n "$reported" ]; then
    [ "$reported" != "$RC" ] && echo "the launcher returned $RC; the trainer reported status $reported"
    RC=$reported
  elif [ -n "$GINO_RUN_NAME" ] && [ -n "$(find "$RESULTS_ABS/$GINO_RUN_NAME" -name '*.safetensors' \
    -newer "$started" 2>/dev/null | head -n 1)" ]; then
    # killed (a rank or node died, the launcher was killed) after saving progress: the next job resumes it
    echo "the trainer ended without reporting its status (status $RC: killed?) after saving checkpoints: resumable"
    RC=3
  else
    echo "the trainer ended without reporting its status (status $RC: killed?) and saved nothing: a failure"
    [ "$RC" = 0 ] || [ "$RC" = 3 ] && RC=1
  fi
  rm -f "$GINO_GW_STATUS_FILE" "$GINO_GW_RUN_FILE" "$started"
  echo "[$(date -Is)] trainer exited with status $RC"
}

# Ends the job by the trainer's status: 0 done (the chain stops), 3 stopped with a resumable checkpoint (with
# RESUBMIT=1 the job resubmits itself, after this one, until MAX_CHAIN), anything else a failure (the chain stops).
gino_chain() {
  case "$RC" in
    0)
      echo "training complete: the chain stops here"
      exit 0
      ;;
    3)
      echo "training stopped before the end with a resumable checkpoint"
      if [ -n "${GINO_CANCELLED:-}" ]; then
        echo "the job was cancelled (SIGTERM after ${GINO_CANCELLED}s, before the walltime): not resubmitting;" \
          "submit the script again to continue the run"
        exit 0
      fi
      [ "$RESUBMIT" = "1" ] && gino_resubmit
      exit 0
      ;;
    *)
      echo "training failed (status $RC; see $RESULTS_DIR/*/train.log): the chain stops here"
      exit "$RC"
      ;;
  esac
}

# Runs a submit command ("$@") in the folder the chain was first submitted from, where the scheduler puts its
# job output files.
gino_submit() {
  (cd "$GINO_SUBMIT_DIR" 2>/dev/null || cd "$GINO_DIR" && "$@")
}

gino_resubmit() {
  local next=$((CHAIN_INDEX + 1)) envfile v jobid depend=()
  if [ "$next" -ge "$MAX_CHAIN" ]; then
    echo "MAX_CHAIN=$MAX_CHAIN reached: not resubmitting (submit this script again to continue)"
    exit 0
  fi
  # one file per chain (several chains may share a results folder)
  local sched=pbs
  [ "$GINO_SCHEDULER" = slurm ] && sched=slurm
  envfile="$RESULTS_ABS/.${sched}_chain_env.${GINO_CHAIN_ID//[^A-Za-z0-9._-]/_}"
  # the settings travel in a file: qsub -v and sbatch --export cannot carry values with commas or spaces
  if ! {
    for v in $GINO_CHAIN_VARS; do printf '%s=%q\n' "$v" "${!v:-}"; done
    printf 'CHAIN_INDEX=%q\n' "$next"
  } >"$envfile"; then
    rm -f "$envfile"
    echo "cannot write $envfile (is the disk full?): not resubmitting; free space and submit this script again"
    exit 1
  fi
  if [ "$GINO_SCHEDULER" = slurm ]; then
    # sbatch keeps a copy of the script it ran: resubmit the project's own, named in GINO_SLURM_SCRIPT
    if jobid=$(gino_submit sbatch --parsable --dependency="afterany:$GINO_JOB_ID" \
      --export="ALL,GINO_CHAIN_ENV=$envfile" "$GINO_SLURM_SCRIPT"); then
      echo "resubmitted as $jobid (chain step $next)"
    else
      echo "sbatch failed: resubmit by hand with sbatch $GINO_SLURM_SCRIPT"
      exit 1
    fi
    return 0
  fi
  [ -n "$GINO_JOB_ID" ] && depend=(-W "depend=afterany:$GINO_JOB_ID")
  # -V: the next job runs in this job's environment (modules loaded, BLAS and MPI settings), as the first did
  if jobid=$(gino_submit qsub -V "${depend[@]}" -v "GINO_CHAIN_ENV=$envfile" "$GINO_PBS_SCRIPT"); then
    echo "resubmitted as $jobid (chain step $next)"
  else
    echo "qsub failed: resubmit by hand with qsub $GINO_PBS_SCRIPT"
    exit 1
  fi
}
