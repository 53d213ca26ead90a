"""The callable a submitit job runs: one training run, into its run directory.

It is Checkpointable: on a timeout or preemption submitit calls `checkpoint`, which counts the
requeue in job.json and resubmits this same task; the trainer's own checkpoint.pt (saved at every
evaluation) does the resuming. The job returns nothing that matters: results are the run
directory, read by `ablate status` and `ablate collect`.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path
from typing import Any

import submitit

from ablations.cluster import jobs
from ablations.config import TrainConfig


class TrainJob(submitit.helpers.Checkpointable):
    def __init__(
        self, config: dict[str, Any], *, runs_dir: str, data: str | None, device: str
    ) -> None:
        self.config, self.runs_dir, self.data, self.device = config, runs_dir, data, device

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / TrainConfig.from_json(self.config).run_id

    def __call__(self) -> str:
        from ablations.cluster import distributed  # torch: loaded in the job, not the submitter
        from ablations.train import run

        config = TrainConfig.from_json(self.config)
        distributed.export_submitit_env()  # a job of several tasks is one run across them
        device = distributed.setup(self.device) or self.device
        main = distributed.is_main()  # only it writes job.json and the heartbeat
        try:
            if main:
                jobs.update_record(self.run_dir, code=str(Path(run.__file__).resolve()))
            with jobs.heartbeat(self.run_dir) if main else contextlib.nullcontext():
                record = run.train(config, out=Path(self.runs_dir), data=self.data,
                                   device=device, show_progress=main)  # fmt: skip
        except Exception as err:
            if main:
                self._record_error(err)
            raise
        finally:
            distributed.teardown()
        return record.status

    def _record_error(self, err: Exception) -> None:
        traceback.print_exc(file=sys.stderr)
        record = jobs.read_record(self.run_dir) or {}
        line = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        jobs.update_record(self.run_dir, error=line, failed_at=jobs.now(),
                           error_submission=record.get("submissions"))  # fmt: skip

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Timed out or preempted: count the requeue; the run resumes from checkpoint.pt."""
        record = jobs.read_record(self.run_dir) or {}
        jobs.update_record(self.run_dir, requeues=int(record.get("requeues", 0)) + 1,
                           requeued_at=jobs.now())  # fmt: skip
        return super().checkpoint(*args, **kwargs)
