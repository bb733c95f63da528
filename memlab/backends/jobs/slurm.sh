#!/bin/bash
# The SLURM job script of `python run.py --name NAME --backend slurm`: one array task's share.
#
#   sbatch --array=1-N --chdir=CWD --output=results/NAME/logs/slurm-%A.%a.log ... \
#          slurm.sh PYTHON REPO MANIFEST
#
# PYTHON is the absolute path of the interpreter that submitted, REPO the folder holding
# memlab/, MANIFEST the frozen list of every task's trials.  Threads follow the CPUs SLURM
# granted (SLURM_CPUS_PER_TASK, set by --cpus-per-task; else 1).  With --gres=gpu:N SLURM
# sets CUDA_VISIBLE_DEVICES itself.
python=$1 repo=$2 manifest=$3
threads=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "memlab: SLURM job $SLURM_ARRAY_JOB_ID task $SLURM_ARRAY_TASK_ID on $(hostname), $threads threads, $(date)"
"$python" -m memlab.task "$manifest" "$SLURM_ARRAY_TASK_ID"
code=$?
echo "memlab-task-exit: $code"   # memlab reads this line to say how a task died
case $code in 99 | 100) exit 1 ;; esac   # keep the twin scripts' exit statuses alike
exit $code
