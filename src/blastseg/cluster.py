"""Batches on a Dask cluster (``--dask``): the chunks of images a batch would run here go to Dask
workers instead, each of which loads the job (the models) once, writes its images' outputs and
sends back their rows; the batch here keeps ``cells.csv``, ``images.jsonl`` and
``summary.json`` as it always does. A worker that dies loses only the images it had not
finished: Dask runs its task again elsewhere, and the batch keeps each finished image's outcome
(atomically, beside the outputs), which the task run again takes instead of redoing it.

Needs the ``distributed`` extra (``pip install 'blastseg[distributed]'``).

>>> parse_address("local:3"), parse_address("tcp://10.0.0.5:8786")
(('local', 3), ('remote', 'tcp://10.0.0.5:8786'))
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from blastseg.errors import ConfigError, OutputError, first_line
from blastseg.runtime import cpu_count, share_threads

DISTRIBUTED_EXTRA = "pip install 'blastseg[distributed]'"
IMAGES_PER_TASK = 8
"""Images per Dask task: enough to make a task's overhead small, few enough to spread a folder."""


@dataclass
class DaskCluster:
    """A connected Dask client, the CPU threads each task may use (``None``: the worker's cores
    divided among its Dask threads) and how many images go into one task."""

    client: Any
    threads: int | None = None
    images_per_task: int = IMAGES_PER_TASK

    def close(self) -> None:
        cluster = self.client.cluster if hasattr(self.client, "cluster") else None
        self.client.close()
        if cluster is not None:
            cluster.close()


def parse_address(address: str) -> tuple[str, Any]:
    """``local`` or ``local:N`` (a LocalCluster of N worker processes, one per core by default),
    or a scheduler's address."""
    if address == "local" or address.startswith("local:"):
        count = address.partition(":")[2] or str(cpu_count())
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--dask {address}: local:N needs a whole number of workers N >= 1")
        return "local", int(count)
    return "remote", address


def connect(address: str) -> DaskCluster:
    """A client for ``address``: a LocalCluster started here (worker processes sharing this
    machine's cores), or the scheduler of a cluster started elsewhere (Slurm, Kubernetes...)."""
    kind, where = parse_address(address)
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError as error:
        raise ConfigError(f"{error.name} is not installed: --dask needs the distributed extra ({DISTRIBUTED_EXTRA})") from None
    if kind == "local":
        import dask

        # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which turns off glibc's adaptive mmap
        # threshold: every large temporary array is then mapped and unmapped afresh, and a batch
        # runs about 30 % slower (scripts/bench_dask.py). The nannies read this once, when made.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, dashboard_address=None)
        return DaskCluster(Client(cluster), threads=max(1, cpu_count() // where))
    try:
        return DaskCluster(Client(where, timeout="20s"))
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigError(f"--dask {where}: no Dask scheduler answered ({first_line(error)})") from None


_jobs: dict[str, Any] = {}  # in a worker process: the job it loaded, by its digest


def run_chunks(digest: str, job: bytes, threads: int | None, chunks: list[list[Any]]) -> list[Any]:
    """On a Dask worker: load the job once (its share of the threads first), then run each chunk."""
    if digest not in _jobs:
        from dask.distributed import get_worker

        _jobs.clear()
        share_threads(threads or max(1, cpu_count() // get_worker().state.nthreads))
        _jobs[digest] = pickle.loads(job)
    return [outcome for chunk in chunks for outcome in _jobs[digest].run(chunk)]


def job_bytes(data: bytes) -> bytes:
    """The pickled job as a task's result, which each worker fetches once and which Dask computes
    again if every worker holding it dies (data scattered to the workers would be lost with them)."""
    return data


def run_on_dask(cluster: DaskCluster | Any, job: Any, chunks: Sequence[Sequence[Any]]) -> Iterator[list[Any]]:
    """The outcomes of the chunks as Dask's workers finish them (``job.run(chunk)`` there); the
    job goes to each worker once. ``cluster`` may be a plain ``dask.distributed.Client``. A task
    may run twice (its worker died): ``job.run`` should not redo what it finished the first time
    (:class:`blastseg.batch.BatchJob` keeps each image's outcome for that)."""
    from dask.distributed import KilledWorker, as_completed

    cluster = cluster if isinstance(cluster, DaskCluster) else DaskCluster(cluster)
    client = cluster.client
    data = pickle.dumps(job)
    shared = client.submit(job_bytes, data, pure=False)  # not scattered: Dask cannot make scattered data again
    digest = hashlib.sha256(data).hexdigest()
    per_task = max(1, cluster.images_per_task // max(1, max((len(chunk) for chunk in chunks), default=1)))
    tasks = [[list(chunk) for chunk in chunks[first : first + per_task]] for first in range(0, len(chunks), per_task)]
    futures = [client.submit(run_chunks, digest, shared, cluster.threads, task, pure=False) for task in tasks]
    try:
        for future in as_completed(futures):
            try:
                yield future.result()
            except KilledWorker:
                raise OutputError(
                    "Dask workers died running the same images again and again (out of memory?); the images finished are kept: rerun with --skip-existing"
                ) from None
            future.release()
    finally:
        client.cancel(futures)
