"""Code the tests and the benchmarks share, kept out of the installed ``xpm_train`` package.

Importable as ``tests.support`` from the repository root: by the tests (pytest puts the root on
``sys.path`` because ``tests`` is a package) and by ``python benchmarks/<script>.py`` (a script
that uses it puts the root on ``sys.path`` itself, as ``train_speed.py`` does).

- ``tiny``: the tiny components, stage and loop settings the unit tests train;
- ``compiles``: what JAX compiled (tests count compilations, benchmarks report compile time);
- ``wandb_file``: a reader of ``.wandb`` files, to check what the wandb logger wrote.
"""
