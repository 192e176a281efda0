"""Scale-out: berg cuts work into independent tasks, an executor runs them (in-process, submitit's debug executor or
a Slurm job array through submitit), berg merges their outputs exactly.

``executor``: the seam (``run_tasks``, ``ExecutorConfig``, the ``--executor`` flags); ``corpus``: sharded corpus search
and encoding (byte-range shards, content-keyed resume, exact merge). submitit is imported only when a debug or Slurm
run starts (``pip install 'berg-core[slurm]'``).
"""
