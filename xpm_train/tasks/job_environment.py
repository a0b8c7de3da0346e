"""Process settings that must be in a job's environment when its process starts."""

from __future__ import annotations

from typing import Any

from xpm_train.training.runtime import export_job_environment


class JobEnvironment:
    """Mixin of the tasks that run JAX: submitting one puts xpm-train's malloc settings
    (:data:`xpm_train.training.runtime.MALLOC_ENVIRONMENT`) in the environment that its job
    process inherits; glibc reads them only when a process starts."""

    def submit(self, **kwargs: Any) -> Any:
        export_job_environment()
        return super().submit(**kwargs)  # type: ignore[misc]
