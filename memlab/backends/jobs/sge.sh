#!/bin/bash
# The SGE job script of `python run.py --name NAME --backend sge`: one array task's share.
#
#   qsub -t 1-N -wd CWD -o results/NAME/logs/sge-$JOB_ID.$TASK_ID.log -j y -S /bin/bash ... \
#        sge.sh PYTHON REPO MANIFEST
#
# PYTHON is the absolute path of the interpreter that submitted (without -V the job's PATH is
# minimal), REPO the folder holding memlab/, MANIFEST the frozen list of every task's trials.
# Threads follow the slots SGE granted (NSLOTS: 1, or N with -pe smp N).
python=$1 repo=$2 manifest=$3
threads=${NSLOTS:-1}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "memlab: SGE job $JOB_ID task $SGE_TASK_ID on $(hostname), $threads threads, $(date)"
"$python" -m memlab.task "$manifest" "$SGE_TASK_ID"
code=$?
echo "memlab-task-exit: $code"   # memlab reads this line to say how a task died
# SGE takes exit status 99 as "requeue the task" and 100 as "hold the job in error state":
# neither may come from a crashed trial.
case $code in 99 | 100) exit 1 ;; esac
exit $code
